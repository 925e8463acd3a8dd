"""The package's user-facing error: bad video input (spec §2.2) exits with status 2 on one line."""

from __future__ import annotations

from paperlab_core.errors import UserError


class VideoInputError(UserError):
    """A video the tool cannot use (missing, unreadable, undecodable, empty, too small): exit status 2."""

    exit_code = 2
