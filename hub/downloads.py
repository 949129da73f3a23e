"""The headers of every download that carries personal data: a named attachment that no cache keeps."""

from __future__ import annotations

from urllib.parse import quote


def attachment_headers(filename: str) -> dict[str, str]:
    """``Content-Disposition: attachment`` as ``filename`` (percent-encoded), with ``Cache-Control: no-store``."""
    # Leads, messages and whole privacy exports: neither a shared proxy nor the browser's own disk cache may
    # keep a copy once the file is saved (the dashboard pages say the same, see hub/ui/templating.py).
    return {"Content-Disposition": f'attachment; filename="{quote(filename)}"', "Cache-Control": "no-store"}
