"""`%automl compress NAME` through a real IPython InteractiveShell."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from nbautoml.engine.study import get_frontend, set_frontend
from nbautoml.notebook import magics


@pytest.fixture
def ip() -> Iterator[InteractiveShell]:
    shell = InteractiveShell.instance()
    before = get_frontend()
    magics.load_ipython_extension(shell)
    set_frontend(None)
    magics.REGISTRY.clear()
    yield shell
    magics.REGISTRY.clear()
    for name in ("study", "fit_result", "compress_report", "df"):
        shell.user_ns.pop(name, None)
    set_frontend(before)


def test_compress_line_magic(ip: InteractiveShell) -> None:
    from sklearn.datasets import load_iris

    ip.user_ns["df"] = load_iris(as_frame=True).frame
    with pytest.raises(UsageError, match="no study named 'nope'"):
        ip.run_line_magic("automl", "compress nope")
    ip.run_line_magic("automl", "fit df --target target --trials 2 --epochs 2 --sampler random --name irisc "
                                "--storage :memory:")
    report = ip.run_line_magic("automl", "compress irisc --methods prune,prune+quantize")
    assert ip.user_ns["compress_report"] is report
    assert list(report.table["model"]) == ["best", "ensemble", "prune", "prune+quantize"]
    assert "<table" in report._repr_html_()
    with pytest.raises(UsageError, match="compress: unknown compression 'zip'"):
        ip.run_line_magic("automl", "compress irisc --methods zip")
