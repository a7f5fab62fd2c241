"""The shared bottom: errors a user can fix, files written atomically, the tag schema, backbones by name
(offline first), and the shell of the commands."""
