"""Learning points from conversion history (`leadscore calibrate`) and testing a model against
history (`leadscore backtest`).

Everything in this package may use the optional training extra (numpy, pandas, scikit-learn,
matplotlib, installed by `make install` as `.[learn]`). Nothing outside `leadscore.learn` imports
it, so the Lambda layer never needs those libraries: at runtime a learned model is just a model
file, read by `leadscore.scoring.engine` like a hand-written one.
"""
