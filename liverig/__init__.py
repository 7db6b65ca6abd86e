"""liverig: real-time motion capture for live avatars.

The import name `liverig` holds the project's folders as subpackages: `liverig.core`,
`liverig.runtime`, `liverig.bridges`, `liverig.models`, `liverig.calibration` (and the data folder
`configs`). Installed (`pip install .`), they are copied under `liverig/`. In a clone they stay at
the top of the repository, so here the package's search path is the repository root.
"""

from pathlib import Path

_here = Path(__file__).resolve().parent
if not (_here / "runtime").is_dir():  # a clone (or an editable install of one): the folders are above
    __path__ = [str(_here.parent), str(_here)]  # the folders, then this one (__main__)
