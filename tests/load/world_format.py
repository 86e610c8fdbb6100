"""What the test process seeds and the locust process loads from: accounts, cases, consents,
the partner, the links issued before the run, and the files to upload, as one JSON file.

Standard library only: the locust process (gevent, monkey-patched) imports this module and
nothing else of the project. The file holds test passwords and access codes of a throwaway
installation; it lives in the test's temporary folder and never reaches the results.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

WORLD_ENV = "MEDVAULT_LOAD_WORLD"  # the locust process finds the world file's path here


@dataclass(frozen=True)
class SeededPatient:
    login: str
    case_id: str
    consent_id: str


@dataclass
class IssuedLink:
    """A partner link as the coordinator received it, and how many downloads it has left."""

    path: str  # /l/<token>
    code: str
    document_ids: list[str]
    uses_left: int


@dataclass
class World:
    password: str
    coordinator: str
    partner_id: str
    patients: list[SeededPatient]
    links: list[IssuedLink]
    payloads: dict[str, str]  # name -> file path
    counts_path: str  # where the locust process writes what it counted itself
    link_downloads: int  # downloads each link allows

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, path: Path) -> World:
        raw = json.loads(path.read_text())
        raw["patients"] = [SeededPatient(**patient) for patient in raw["patients"]]
        raw["links"] = [IssuedLink(**link) for link in raw["links"]]
        return cls(**raw)
