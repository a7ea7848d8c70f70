"""A small multipart/form-data reader for the simulated OSS form upload.

Starlette parses forms only with the optional python-multipart package; the simulator needs just
named fields and one file part, so it reads them itself rather than adding a dependency.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import Message


@dataclass
class FormPart:
    name: str
    filename: str | None
    content_type: str | None
    data: bytes


def _boundary(content_type: str) -> bytes:
    header = Message()
    header["content-type"] = content_type
    if header.get_content_type() != "multipart/form-data":
        raise ValueError("expected multipart/form-data")
    boundary = header.get_param("boundary")
    if not isinstance(boundary, str) or not boundary:
        raise ValueError("multipart/form-data without a boundary")
    return boundary.encode("latin-1")


def parse_form(content_type: str, body: bytes) -> dict[str, FormPart]:
    """The parts of a multipart/form-data body by field name; ValueError when it is malformed."""
    delimiter = b"--" + _boundary(content_type)
    sections = body.split(delimiter)
    if len(sections) < 3 or not sections[-1].startswith(b"--"):
        raise ValueError("the multipart body is not terminated")
    parts: dict[str, FormPart] = {}
    for section in sections[1:-1]:
        if not section.startswith(b"\r\n") or not section.endswith(b"\r\n"):
            raise ValueError("malformed multipart section")
        head, separator, data = section[2:-2].partition(b"\r\n\r\n")
        if not separator:
            raise ValueError("a multipart section has no header end")
        headers = Message()
        for line in head.decode("utf-8", "replace").split("\r\n"):
            name, colon, value = line.partition(":")
            if colon:
                headers[name.strip()] = value.strip()
        if headers.get_content_disposition() != "form-data":
            raise ValueError("a multipart section is not form-data")
        field = headers.get_param("name", header="content-disposition")
        if not isinstance(field, str):
            raise ValueError("a multipart section has no name")
        parts[field] = FormPart(field, headers.get_filename(), headers.get("content-type"), data)
    return parts
