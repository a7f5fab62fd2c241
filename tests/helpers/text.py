"""Text as a Perspective client reads it."""


def utf16_slice(text: str, begin: int, end: int) -> str:
    """text[begin:end] with begin and end counted in UTF-16 code units, as a JavaScript client slices."""
    return text.encode("utf-16-le")[2 * begin : 2 * end].decode("utf-16-le")
