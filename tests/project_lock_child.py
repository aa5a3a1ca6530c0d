"""Holds a project open until stdin closes (tests/test_project.py: second-instance refusal)."""
import sys

from core.project import Project

project = Project.open(sys.argv[1], import_jsonl=False)
project.record_verdict("held/by/child", "confirm")
print("ready", flush=True)
sys.stdin.read()
project.close()
