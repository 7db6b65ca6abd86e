"""The core everything in liverig depends on and which depends on nothing of ours: the messages
passed between stages (`types`), the canonical skeleton (`skeleton`), the config schema (`config`),
rotation geometry shared by retargeting and training (`geometry`), safe reading of user files
(`safe_io`) and pinned, checksummed downloads (`fetch`). tests/test_layout.py keeps it that way."""
