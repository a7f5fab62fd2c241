"""How good a model is: eval sets, metrics, thresholds, bias, the behaviour suite, reports, plots, the
TF-IDF baseline and the peer, and run comparison."""
