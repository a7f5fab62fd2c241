"""Scoring comments with a trained model: PyTorch and ONNX scorers, whole table files, and tables too big
for one process, sharded over Lightning's DDP (distributed: the Lightning pieces; shards: the folder's
format and merge; manifest: the job a folder belongs to; launch: the launcher's environment; sharded: the
run the predict command starts)."""
