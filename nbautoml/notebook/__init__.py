"""The notebook front end: the %%automl magic, the live panel, its Bokeh plots (imports IPython, ipywidgets).
"""
