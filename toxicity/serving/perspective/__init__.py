"""The Perspective API drop-in: its request models and errors, comments:analyze, comments:suggestscore and
the store of suggestions with its export, the discovery document, language detection, and how a comment is
read and split into sentences. Nothing here imports torch; the export needs neither torch nor LitServe."""
