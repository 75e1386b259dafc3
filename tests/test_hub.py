"""push_folder and scripts/push_to_hub.py against a local stand-in for the Hub API.

The stand-in is a real HTTP server on 127.0.0.1 that speaks the endpoints huggingface_hub's ``create_repo``
and (non-xet) ``upload_folder`` use: ``POST /api/repos/create``, ``POST /api/validate-yaml`` (the model
card's metadata), ``POST /api/models/{repo}/preupload/{rev}`` (every file answered as a "regular" upload,
so contents travel inline) and ``POST /api/models/{repo}/commit/{rev}`` (NDJSON). The client code path is huggingface_hub's own;
only ``constants.ENDPOINT`` points at the stand-in.
"""

import base64
import hashlib
import json
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from huggingface_hub import constants, hf_api

from diffusers_infoflow.hub import push_folder
from diffusers_infoflow.sampling import DEFAULT_MODEL


REPO_ROOT = Path(__file__).resolve().parents[1]
TOKEN = "hf_secret_token_for_tests"


class _HubStandIn(BaseHTTPRequestHandler):
    """Keeps repos as {repo_id: {"visibility": str, "files": {path: bytes}, "commits": [message, ...]}}."""

    def log_message(self, *args):  # keep pytest output clean
        pass

    def _reply(self, status: int, payload) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _repo_path(self):
        """(repo_id, rest) of ``/api/models/{ns}/{name}/...`` or ``/{ns}/{name}/resolve/...`` paths."""
        parts = self.path.split("?")[0].split("/")
        if parts[1] == "api" and len(parts) >= 5:
            return f"{parts[3]}/{parts[4]}", parts[5:]
        return f"{parts[1]}/{parts[2]}", parts[3:]

    def _not_found(self, error_code: str) -> None:
        self.send_response(404)
        self.send_header("X-Error-Code", error_code)  # huggingface_hub raises RepositoryNotFoundError etc. on it
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _serve(self, with_body: bool):
        hub = self.server.hub
        hub["requests"].append(f"{self.command} {self.path}")
        repo_id, rest = self._repo_path()
        repo = hub["repos"].get(repo_id)
        if repo is None:
            return self._not_found("RepoNotFound")
        sha = f"{len(repo['commits']):040x}"
        if self.path.startswith("/api/models/") and (not rest or rest[0] == "revision"):  # repo_info
            return self._reply(200, {"id": repo_id, "sha": sha, "private": repo["visibility"] == "private",
                                     "siblings": [{"rfilename": path} for path in sorted(repo["files"])]})
        if self.path.startswith("/api/models/") and rest[0] == "tree":  # list_repo_tree, recursive
            return self._reply(200, [{"type": "file", "path": path, "size": len(data), "oid": hashlib.sha1(data).hexdigest()}
                                          for path, data in sorted(repo["files"].items())])
        if rest[:1] == ["resolve"]:  # a file: metadata (HEAD) and content (GET)
            data = repo["files"].get("/".join(rest[2:]))
            if data is None:
                return self._not_found("EntryNotFound")
            self.send_response(200)
            self.send_header("X-Repo-Commit", sha)
            self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if with_body:
                self.wfile.write(data)
            return
        return self._reply(404, {"error": f"unknown endpoint {self.path}"})

    def do_GET(self):
        self._serve(with_body=True)

    def do_HEAD(self):
        self._serve(with_body=False)

    def do_POST(self):
        hub = self.server.hub
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        hub["authorization"].append((self.path, self.headers.get("Authorization")))
        hub["requests"].append(self.path)
        if self.path == "/api/validate-yaml":
            # Like the Hub: the card's YAML front matter must parse to a mapping.
            text = json.loads(body)["content"]
            try:
                metadata = yaml.safe_load(text.split("---")[1]) if text.startswith("---") else None
            except yaml.YAMLError as err:
                return self._reply(400, {"errors": [{"message": str(err)}]})
            if not isinstance(metadata, dict):
                return self._reply(400, {"errors": [{"message": "README.md has no YAML metadata block"}]})
            hub["validated_cards"].append(metadata)
            return self._reply(200, {"warnings": []})
        if self.path == "/api/repos/create":
            request = json.loads(body)
            repo_id = f"{request['organization']}/{request['name']}" if request.get("organization") else request["name"]
            if repo_id in hub["repos"]:
                return self._reply(409, {"error": "You already created this model repo", "url": f"{hub['endpoint']}/{repo_id}"})
            hub["repos"][repo_id] = {"visibility": request.get("visibility"), "files": {}, "commits": []}
            return self._reply(200, {"url": f"{hub['endpoint']}/{repo_id}", "name": repo_id})
        parts = self.path.split("?")[0].split("/")  # "", api, models, ns, name, action, revision
        if len(parts) < 7:
            return self._reply(404, {"error": f"unknown endpoint {self.path}"})
        repo_id, action = f"{parts[3]}/{parts[4]}", parts[5]
        if repo_id not in hub["repos"]:
            return self._reply(404, {"error": f"Repository {repo_id} not found"})
        if action == "preupload":
            files = json.loads(body)["files"]
            return self._reply(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]})
        if action == "commit":
            repo = hub["repos"][repo_id]
            for line in body.decode().splitlines():
                item = json.loads(line)
                if item["key"] == "header":
                    repo["commits"].append(item["value"]["summary"])
                elif item["key"] == "file":
                    repo["files"][item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                else:
                    return self._reply(400, {"error": f"stand-in does not handle {item['key']!r}"})
            oid = f"{len(repo['commits']):040x}"
            return self._reply(200, {"commitUrl": f"{hub['endpoint']}/{repo_id}/commit/{oid}", "commitOid": oid})
        return self._reply(404, {"error": f"unknown endpoint {self.path}"})


@pytest.fixture
def local_hub(monkeypatch):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _HubStandIn)
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    server.hub = {"endpoint": endpoint, "repos": {}, "authorization": [], "requests": [], "validated_cards": []}
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setattr(constants, "ENDPOINT", endpoint)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # CI runs offline; this test's "Hub" is local
    monkeypatch.setattr(hf_api, "is_xet_available", lambda: False)  # the stand-in speaks the inline-upload protocol
    yield server.hub
    server.shutdown()
    server.server_close()


def _model_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(DEFAULT_MODEL, folder)
    (folder / "checkpoint-5").mkdir()
    (folder / "checkpoint-5" / "optimizer.bin").write_bytes(b"not for upload")
    (folder / "logs").mkdir()
    (folder / "logs" / "events").write_text("not for upload")
    return folder


def test_push_uploads_the_pipeline_and_card_but_not_checkpoints(local_hub, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    folder = _model_folder(tmp_path)
    url = push_folder(str(folder), "me/mnist-ddpm", private=True)

    repo = local_hub["repos"]["me/mnist-ddpm"]
    assert url.startswith(local_hub["endpoint"] + "/me/mnist-ddpm/commit/")
    assert repo["visibility"] == "private" and len(repo["commits"]) == 1
    assert local_hub["validated_cards"][0]["library_name"] == "diffusers"
    expected = {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
                and p.relative_to(folder).parts[0] not in ("checkpoint-5", "logs", "README.md")}
    card = repo["files"].pop("README.md").decode()
    assert repo["files"] == expected  # byte-identical, nothing from checkpoints/ or logs/
    # the uploaded card loads the repository it is in; the folder's card still names the folder's own model
    assert 'DiffusionPipeline.from_pretrained("me/mnist-ddpm")' in card and "infoflow sample --model me/mnist-ddpm " in card
    assert card == (folder / "README.md").read_text().replace('"mnist-ddpm"', '"me/mnist-ddpm"').replace(
        "--model mnist-ddpm ", "--model me/mnist-ddpm ").replace("--model MODEL ", "--model me/mnist-ddpm ")
    assert {"model_index.json", "unet/diffusion_pytorch_model.safetensors"} <= set(repo["files"])
    # every request carries the token but the card check, which huggingface_hub's ModelCard.validate sends without
    assert {auth for path, auth in local_hub["authorization"] if path != "/api/validate-yaml"} == {f"Bearer {TOKEN}"}
    assert TOKEN not in capsys.readouterr().out


def test_push_leaves_out_the_runs_own_tracker_folder_and_refuses_a_bad_repo_id(local_hub, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    folder = _model_folder(tmp_path)
    args = json.loads((folder / "infoflow_training_args.json").read_text())
    (folder / "infoflow_training_args.json").write_text(json.dumps({**args, "logging_dir": "tb"}))
    (folder / "tb").mkdir()
    (folder / "tb" / "events.out.tfevents.1").write_text("not for upload")
    push_folder(str(folder), "me/tb")
    assert not any(name.startswith("tb/") for name in local_hub["repos"]["me/tb"]["files"])
    with pytest.raises(ValueError, match="'me/bad!name' is not a Hub repository id"):
        push_folder(str(folder), "me/bad!name")
    assert set(local_hub["repos"]) == {"me/tb"}


def test_push_refuses_an_invalid_card_before_creating_the_repo(local_hub, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    folder = _model_folder(tmp_path)
    (folder / "README.md").write_text("---\n- a list, not a mapping\n---\n# A card\n")
    with pytest.raises(ValueError, match="metadata block should be a dict"):
        push_folder(str(folder), "me/no-card")
    assert local_hub["repos"] == {}  # no empty repository left behind


def test_push_twice_reuses_the_repo(local_hub, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    folder = _model_folder(tmp_path)
    push_folder(str(folder), "me/mnist-ddpm")
    push_folder(str(folder), "me/mnist-ddpm")  # create_repo answers 409, exist_ok=True carries on
    assert len(local_hub["repos"]["me/mnist-ddpm"]["commits"]) == 2


def test_push_refuses_a_folder_without_a_pipeline(local_hub, tmp_path):
    with pytest.raises(FileNotFoundError, match="no model_index.json"):
        push_folder(str(tmp_path), "me/x")
    assert local_hub["repos"] == {} and local_hub["authorization"] == []


def test_push_to_hub_script_against_the_stand_in(local_hub, tmp_path):
    """The script in a subprocess: HF_ENDPOINT is how a user points huggingface_hub at another Hub."""
    folder = _model_folder(tmp_path)
    env = {"HF_ENDPOINT": local_hub["endpoint"], "HF_TOKEN": TOKEN, "HF_HUB_OFFLINE": "0", "PATH": "/usr/bin:/bin"}
    code = "import huggingface_hub.hf_api as h; h.is_xet_available = lambda: False; import runpy, sys; " \
           "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"
    done = subprocess.run([sys.executable, "-c", code, str(REPO_ROOT / "scripts" / "push_to_hub.py"), str(folder), "team/ddpm"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith(local_hub["endpoint"] + "/team/ddpm/commit/")
    assert TOKEN not in done.stdout + done.stderr
    assert "unet/diffusion_pytorch_model.safetensors" in local_hub["repos"]["team/ddpm"]["files"]


def test_an_unreachable_hub_is_one_line_and_the_folder_stays(tmp_path):
    """No network (here: a closed port) gives the script's one line, naming the folder to push again later."""
    import socket

    folder = _model_folder(tmp_path)
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    env = {"HF_ENDPOINT": closed, "HF_TOKEN": TOKEN, "HF_HUB_OFFLINE": "0", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "push_to_hub.py"), str(folder), "team/ddpm"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert f"could not upload {folder} to team/ddpm" in done.stderr and "run scripts/push_to_hub.py" in done.stderr
    assert (folder / "model_index.json").is_file()


def _infoflow(args, env):
    return subprocess.run([sys.executable, "-m", "diffusers_infoflow.cli", *args], env=env, capture_output=True, text=True, timeout=300)


def _hub_env(local_hub, tmp_path, offline="0"):
    """A subprocess's environment that points huggingface_hub at the stand-in and at an empty cache."""
    return {"HF_ENDPOINT": local_hub["endpoint"], "HF_HUB_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": offline,
            "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}


def test_infoflow_sample_downloads_a_hub_model_then_reads_it_offline(local_hub, tmp_path, monkeypatch):
    """`infoflow sample --model owner/name` on a pipeline pushed to the stand-in: downloaded into the cache with its
    calibrated scheduler_information/ (trig-information needs it), the grid of the local folder, then offline from the cache."""
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    push_folder(str(DEFAULT_MODEL), "me/mnist-ddpm")
    common = ["sample", "--scheduler", "trig-information", "--model-calls", "3", "--num-images", "4"]
    env = _hub_env(local_hub, tmp_path)
    online = _infoflow(common + ["--model", "me/mnist-ddpm", "--output", str(tmp_path / "hub.png")], env)
    assert online.returncode == 0, online.stderr
    assert any(r.endswith("/scheduler_information/scheduler_config.json") and r.startswith("GET") for r in local_hub["requests"])
    assert (tmp_path / "cache" / "models--me--mnist-ddpm").is_dir()
    local = _infoflow(common + ["--model", str(DEFAULT_MODEL), "--output", str(tmp_path / "local.png")], env)
    assert local.returncode == 0, local.stderr
    assert (tmp_path / "hub.png").read_bytes() == (tmp_path / "local.png").read_bytes()
    asked = len(local_hub["requests"])
    offline = _infoflow(common + ["--model", "me/mnist-ddpm", "--output", str(tmp_path / "offline.png")],
                        _hub_env(local_hub, tmp_path, offline="1"))
    assert offline.returncode == 0, offline.stderr
    assert len(local_hub["requests"]) == asked  # the cache alone
    assert (tmp_path / "offline.png").read_bytes() == (tmp_path / "local.png").read_bytes()


def test_a_hub_model_that_cannot_be_loaded_is_one_line(local_hub, tmp_path):
    """Not on the Hub, not cached while offline, and --update-card (which would write into the cache): one line each."""
    for offline, reason in (("0", "the Hub has no such repository"), ("1", "HF_HUB_OFFLINE is set and it is not in the Hugging Face cache")):
        done = _infoflow(["sample", "--model", "me/nothing", "--output", str(tmp_path / "x.png")], _hub_env(local_hub, tmp_path, offline))
        lines = done.stderr.strip().splitlines()
        assert done.returncode != 0 and len(lines) == 1, done.stderr
        assert lines[0].startswith("infoflow sample: model 'me/nothing' is not a local folder nor a shipped model (mnist-ddpm, "
                                   f"mnist-joint-trig), and no Hub pipeline of that name could be loaded: {reason}"), lines[0]
    asked = len(local_hub["requests"])
    done = _infoflow(["evaluate", "me/nothing", "--update-card", "--num-images", "4"], _hub_env(local_hub, tmp_path))
    assert done.returncode != 0 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "--update-card writes the model card of a folder you name; 'me/nothing' is a Hub repository" in done.stderr
    assert len(local_hub["requests"]) == asked  # refused before any download
