"""Upload file names become safe S3 key parts whatever a client sends."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from aurora.attachments import MAX_FILENAME_CHARS, safe_filename

SAFE = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]*$")


@given(st.text(max_size=400))
def test_any_name_becomes_one_safe_path_segment(name):
    safe = safe_filename(name)
    assert SAFE.match(safe), safe
    assert len(safe) <= MAX_FILENAME_CHARS
    assert safe not in (".", "..")


def test_directories_and_shell_characters_are_dropped_and_the_extension_kept():
    assert safe_filename("../../etc/pass wd.png") == "pass_wd.png"
    assert safe_filename("C:\\\\Users\\\\me\\\\report.PDF") == "report.PDF"
    assert safe_filename("$(rm -rf ~);.txt") == "rm_-rf.txt"
    assert safe_filename(".bashrc") == "file.bashrc"
    assert safe_filename("") == "file"
