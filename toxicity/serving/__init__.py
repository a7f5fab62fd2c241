"""The HTTP server: request schemas, the LitServe API, the Perspective routes, app assembly and auth, the
page."""
