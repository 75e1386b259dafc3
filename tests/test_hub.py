"""push_folder against a stand-in for the Hub: HfApi's create_repo/upload_folder are recorded, not sent."""

import shutil
from pathlib import Path

import pytest
from huggingface_hub import HfApi
from huggingface_hub.hf_api import CommitInfo, RepoUrl

from diffusers_infoflow.commands.sample import DEFAULT_MODEL
from diffusers_infoflow.hub import UPLOAD_IGNORE_PATTERNS, push_folder


@pytest.fixture
def recorded_hub(monkeypatch):
    calls = []

    def create_repo(self, repo_id, **kwargs):
        calls.append(("create_repo", repo_id, kwargs, self.token))
        return RepoUrl(f"https://huggingface.co/{repo_id}")

    def upload_folder(self, *, repo_id, folder_path, **kwargs):
        calls.append(("upload_folder", repo_id, {"folder_path": folder_path, **kwargs}, self.token))
        return CommitInfo(commit_url=f"https://huggingface.co/{repo_id}/commit/abc", commit_message="m", commit_description="", oid="abc")

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    return calls


def test_push_creates_the_repo_and_uploads_without_checkpoints(recorded_hub, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_secret_token")
    folder = tmp_path / "model"
    shutil.copytree(DEFAULT_MODEL, folder)
    (folder / "checkpoint-5").mkdir()
    url = push_folder(str(folder), "me/mnist-ddpm", private=True)
    assert url == "https://huggingface.co/me/mnist-ddpm/commit/abc"
    (create, repo, kwargs, token), (upload, repo2, upload_kwargs, token2) = recorded_hub
    assert (create, repo, kwargs["private"], kwargs["exist_ok"]) == ("create_repo", "me/mnist-ddpm", True, True)
    assert upload == "upload_folder" and repo2 == "me/mnist-ddpm" and upload_kwargs["ignore_patterns"] == UPLOAD_IGNORE_PATTERNS
    assert token == token2 == "hf_secret_token"


def test_push_refuses_a_folder_without_a_pipeline(recorded_hub, tmp_path):
    with pytest.raises(FileNotFoundError, match="no model_index.json"):
        push_folder(str(tmp_path), "me/x")
    assert recorded_hub == []
