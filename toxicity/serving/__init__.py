"""The HTTP server: request schemas, guards (host, origin, sizes, keys), the LitServe API, every private
LitServe and uvicorn name in one module (internals), app assembly, the page; the Perspective drop-in in
its own room (perspective/)."""
