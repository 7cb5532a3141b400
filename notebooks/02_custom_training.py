# %% [markdown]
# # Your own training loop: a CNN on the digit images
#
# `nbautoml.torch.train` is a convenience, not a requirement. Any loop works, as long as it tells the trial
# how it is doing:
#
# - `trial.report(epoch, val_acc=..., val_loss=...)` after each epoch: the panel draws the learning curves,
#   the early-stopping scheduler compares trials at the same epoch, the journal records it;
# - `trial.should_stop()` right after: `True` when the scheduler prunes this trial or you press Stop — then
#   leave the loop.
#
# Inside `%%automl`, `trial` is in the cell's namespace (`nbautoml.current_trial()` gives it to code
# elsewhere). The cell's value is its last expression when that is a number or a dict; here the last statement
# is the loop, so the trial's value is the best `val_acc` it reported.

# %% tags=["parameters"]
# Parameters. The test suite runs this notebook with NBAUTOML_BUDGET=ci: a tiny budget for 2 CPU cores.
import os

BUDGET = os.environ.get("NBAUTOML_BUDGET", "full")
TRIALS = 6 if BUDGET == "ci" else 30
EPOCHS = 6 if BUDGET == "ci" else 20

# %% [markdown]
# The digits as images: tensors of shape (N, 1, 8, 8), split once into training and validation rows.

# %%
# %load_ext nbautoml
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.nn import functional as F

digits = load_digits()
images = (digits.images / 16.0).astype("float32")[:, None]  # (N, 1, 8, 8)
x_tr, x_val, y_tr, y_val = map(torch.from_numpy, train_test_split(
    images, digits.target, test_size=0.2, stratify=digits.target, random_state=0))
print("train", tuple(x_tr.shape), "validation", tuple(x_val.shape))

# %% [markdown]
# ## The search
#
# Two convolutions, a pooling and a linear head, written by hand. The `hp.*` calls choose the width, the first
# kernel's size, the dropout, the learning rate and the batch size. `--scheduler asha` (asynchronous
# successive halving) compares trials at epochs 1, 3, 9, … and stops the ones in the bottom two thirds —
# your loop only has to look at `trial.should_stop()`.

# %%
# %%automl --name custom-cnn --trials $TRIALS --metric val_acc --scheduler asha --seed 0
channels = hp.choice("channels", [8, 16, 32])
kernel = hp.choice("kernel", [3, 5])
batch_size = hp.choice("batch_size", [32, 64, 128])
torch.manual_seed(trial.number)
net = nn.Sequential(
    nn.Conv2d(1, channels, kernel, padding=kernel // 2), nn.ReLU(),
    nn.Conv2d(channels, 2 * channels, 3, padding=1), nn.ReLU(),
    nn.MaxPool2d(2),  # 8x8 -> 4x4
    nn.Flatten(), nn.Dropout(hp.float("dropout", 0.0, 0.5)),
    nn.Linear(2 * channels * 4 * 4, 10),
)
optimizer = torch.optim.Adam(net.parameters(), lr=hp.float("lr", 1e-4, 3e-2, log=True))

for epoch in range(EPOCHS):
    net.train()
    for batch in torch.randperm(len(x_tr)).split(batch_size):
        optimizer.zero_grad()
        F.cross_entropy(net(x_tr[batch]), y_tr[batch]).backward()
        optimizer.step()
    net.eval()
    with torch.no_grad():
        logits = net(x_val)
    trial.report(epoch, val_acc=(logits.argmax(1) == y_val).float().mean().item(),
                 val_loss=F.cross_entropy(logits, y_val).item())
    if trial.should_stop():  # pruned by ASHA, or stopped by you
        break

# %% [markdown]
# ## What happened
#
# Each trial's reports are kept: `trial.history("val_acc")` is its learning curve. Pruned trials ran fewer
# epochs — that is the time ASHA saved.

# %%
for t in study.trials:
    curve = " ".join(f"{acc:.2f}" for _, acc in t.history("val_acc"))
    print(f"trial {t.number} {t.state.value:9} epochs={len(t.reports):2}  val_acc: {curve}")
epochs_run = sum(len(t.reports) for t in study.trials)
print(f"{epochs_run} epochs trained of {EPOCHS * len(study.trials)} without early stopping")

# %% [markdown]
# `study_best.net` is the best trial's network, exactly as its loop left it (the last epoch, not the best
# one: a loop of your own decides what to keep — `nbautoml.torch.train` keeps the best epoch for you).

# %%
print(f"best trial {study.best_trial.number}: {study.best_params}")
if study_best is None:  # the best trial ran before a kernel restart: its variables are not in this kernel
    print("its network is not in this kernel; re-run the search with --fresh to train it here")
else:
    net = study_best.net.eval()
    with torch.no_grad():
        accuracy = (net(x_val).argmax(1) == y_val).float().mean().item()
    print(f"best reported val_acc {study.best_value:.3f}; the network as the loop left it: {accuracy:.3f}")

# %% [markdown]
# ## Making your loop resumable
#
# A stopped trial ends `INTERRUPTED` and is re-run when the search continues, with `trial.resume_step` set to
# the next epoch to run. To pick up where it left off, save a checkpoint into `trial.checkpoint_dir` each epoch
# and start the loop at `range(trial.resume_step, EPOCHS)` after loading it. `nbautoml.torch.train` does all
# of this for you (see [04_interrupt_and_resume](04_interrupt_and_resume.ipynb)).
