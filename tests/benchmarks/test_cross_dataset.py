"""The cross-dataset benchmark's report: the matrix, leave-one-out against the best transfer, the suite."""

from benchmarks.cross_dataset import DATASETS, SHORT, markdown


def test_the_report_lays_out_the_matrix_and_leave_one_out():
    def scores(value):
        return {name: {"tags": {}, "mean": value} for name in DATASETS}

    models = {SHORT[name]: {"fit_seconds": 10.0, "scores": scores(0.7)} for name in DATASETS}
    models["jigsaw"]["scores"]["ethos"]["mean"] = 0.8
    models["all-but-ethos"] = {"fit_seconds": 12.0, "scores": scores(0.75)}
    models["all"] = {"fit_seconds": 20.0, "scores": {**scores(0.9), "behaviour": {"spelling": 0.5}}}
    models["davidson"]["scores"]["tweeteval_offensive"]["mean"] = None
    text = markdown({"settings": {"epochs": 1}, "models": models}, "Cross-dataset matrix")
    assert "| all | 0.900 | 0.900 | 0.900 | 0.900 | 0.900 | 20 |" in text
    assert "| davidson | 0.700 | 0.700 | 0.700 | - | 0.700 | 10 |" in text  # no shared tag: -
    assert "| ethos | 0.750 | 0.800 (jigsaw) |" in text  # leave-one-out against the best transfer
    assert "| all | 0.50 |" in text  # the behaviour suite
