"""Signals from a machine-learning ensemble (see ``docs/ml.md``).

* :mod:`.features` - bar features, one incremental implementation for every mode;
* :mod:`.labels` - forward-return and triple-barrier labels with their resolve times;
* :mod:`.dataset` - bars to a time-ordered training set;
* :mod:`.models` - logistic regression, random forest, LightGBM, XGBoost, calibrated;
* :mod:`.ensemble` - the members' vote and its confidence;
* :mod:`.walkforward` - purged, embargoed walk-forward evaluation;
* :mod:`.training` - a training configuration and run;
* :mod:`.artifacts` - versioned model files with a manifest (the only I/O here);
* :mod:`.source` - the ``ensemble`` signal source with its fallback.
"""
