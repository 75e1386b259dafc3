"""FID / KID / IS with the packaged MNIST feature network, the data loaders and ``infoflow evaluate``."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image


pytest.importorskip("torchmetrics")
from diffusers_infoflow.metrics import (
    generative_scores,
    inception_feature_extractor,
    load_image_set,
    load_mnist,
)

from .tiny_pipelines import tiny_mnist_ddpm_pipeline


@pytest.fixture(scope="module")
def digit_like_images():
    """Blobs on a black background: MNIST-shaped images that need no data files."""
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    centres = 10 + 8 * torch.rand(400, 2, generator=g)
    radius = 3 + 3 * torch.rand(400, 1, 1, generator=g)
    dist = ((yy - centres[:, 0, None, None]) ** 2 + (xx - centres[:, 1, None, None]) ** 2).sqrt()
    return (1 - (dist - radius).clamp(0, 1)).unsqueeze(1)


def test_packaged_classifier_is_small():
    asset = Path(__file__).resolve().parents[1] / "diffusers_infoflow" / "assets" / "mnist_classifier.safetensors"
    assert asset.is_file() and asset.stat().st_size < 2_000_000


def test_identical_sets_have_zero_fid_and_shifted_sets_do_not(digit_like_images):
    same = generative_scores(digit_like_images, digit_like_images, metrics=("fid", "kid"), kid_subsets=10, kid_subset_size=200)
    assert abs(same["fid"]) < 1e-2
    shifted = (digit_like_images * 0.6 + 0.3).clamp(0, 1)
    moved = generative_scores(shifted, digit_like_images, metrics=("fid", "kid"), kid_subsets=10, kid_subset_size=200)
    assert moved["fid"] > 1.0
    # KID draws real and fake subsets independently, so identical sets give only ~0 (unbiased, noisy)
    assert abs(same["kid_mean"]) < 0.1 * moved["kid_mean"]


def test_inception_score_range(digit_like_images):
    scores = generative_scores(digit_like_images, digit_like_images, metrics=("is",), is_splits=4)
    assert 1.0 <= scores["is_mean"] <= 10.0


def test_bad_inputs(digit_like_images):
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        generative_scores(digit_like_images * 2 - 1, digit_like_images)
    with pytest.raises(ValueError, match="metrics"):
        generative_scores(digit_like_images, digit_like_images, metrics=("psnr",))
    with pytest.raises(ValueError, match="feature_network"):
        generative_scores(digit_like_images, digit_like_images, feature_network="vgg")
    with pytest.raises(ValueError, match="28"):
        generative_scores(torch.rand(4, 1, 32, 32), torch.rand(4, 1, 32, 32), metrics=("fid",))


def test_a_custom_feature_network_needs_its_feature_size(digit_like_images):
    network = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 16))
    with pytest.raises(ValueError, match="needs an integer `num_features` attribute .* Sequential has None"):
        generative_scores(digit_like_images, digit_like_images, feature_network=network, metrics=("fid",))
    network.num_features = 16
    same = generative_scores(digit_like_images, digit_like_images, feature_network=network, metrics=("fid",))
    assert abs(same["fid"]) < 1e-3


def test_inception_needs_weights_or_fails_clearly():
    try:
        inception_feature_extractor()
    except RuntimeError as err:
        assert "Inception" in str(err) or "torch-fidelity" in str(err)


def test_loaders(tmp_path, digit_like_images):
    from PIL import Image

    pixels = (digit_like_images[:5, 0] * 255).round().to(torch.uint8).numpy()
    for i, image in enumerate(pixels):
        Image.fromarray(image).save(tmp_path / f"{i:02d}.png")
    torch.testing.assert_close(load_image_set(tmp_path), torch.from_numpy(pixels).float().unsqueeze(1) / 255)
    np.savez(tmp_path / "gen.npz", samples=pixels.astype(np.float32) / 127.5 - 1)
    loaded = load_image_set(tmp_path / "gen.npz", value_range=(-1, 1))
    torch.testing.assert_close(loaded, torch.from_numpy(pixels).float().unsqueeze(1) / 255, atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="must lie in"):
        load_image_set(tmp_path / "gen.npz")  # [-1, 1] floats without --input-range


def test_image_folders_keep_depth_and_colour_and_refuse_what_they_cannot_read(tmp_path):
    """16-bit PNGs at their full scale (they were clipped to 8 bits: black and white), colour kept as 3 channels
    (it was turned grey), and a folder with files of other kinds refused (they were skipped)."""
    from PIL import Image

    deep = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000)
    for name in ("a", "b"):
        (tmp_path / "deep").mkdir(exist_ok=True)
        Image.fromarray(deep).save(tmp_path / "deep" / f"{name}.png")
    loaded = load_image_set(tmp_path / "deep")
    assert loaded.shape == (2, 1, 8, 8)
    torch.testing.assert_close(loaded[0, 0], torch.from_numpy(deep / 65535).float())
    (tmp_path / "colour").mkdir()
    red = np.zeros((8, 8, 3), dtype=np.uint8)
    red[..., 0] = 200
    Image.fromarray(red).save(tmp_path / "colour" / "red.png")
    Image.fromarray(np.full((8, 8), 50, dtype=np.uint8)).save(tmp_path / "colour" / "grey.png")
    colour = load_image_set(tmp_path / "colour")
    assert colour.shape == (2, 3, 8, 8) and torch.allclose(colour[1, 0], torch.tensor(200 / 255))
    assert torch.allclose(colour[0], torch.tensor(50 / 255))  # the grey one, repeated to three channels
    Image.fromarray(red).save(tmp_path / "colour" / "red.ppm")
    with pytest.raises(ValueError, match=r"1 file\(s\) that are not .* images, e.g. \['red.ppm'\]"):
        load_image_set(tmp_path / "colour")


def test_evaluate_command(tmp_path, mnist_path, digit_like_images, capsys):
    from diffusers_infoflow.cli import main

    with np.load(mnist_path) as mnist:
        np.savez(tmp_path / "gen.npz", x=mnist["x_train"][:300])
    out = tmp_path / "scores.json"
    assert main(["evaluate", str(tmp_path / "gen.npz"), "--num-reference", "300", "--metrics", "fid", "kid", "--output", str(out)]) == 0
    scores = json.loads(out.read_text())
    assert scores["reference"] == "MNIST test" and scores["num_reference"] == 300
    assert 0 <= scores["fid"] < 50
    printed = capsys.readouterr().out
    assert "Fréchet distance of mnist features (squared feature units" in printed and "unbiased MMD² of mnist features" in printed


def test_evaluate_samples_a_pipeline_folder(tmp_path):
    """`infoflow evaluate <pipeline folder>` draws samples with the chosen scheduler and scores them."""
    from diffusers_infoflow.cli import main
    from diffusers_infoflow.sampling import DEFAULT_MODEL

    reference = np.random.default_rng(0).integers(0, 256, size=(40, 28, 28), dtype=np.uint8)
    np.savez(tmp_path / "ref.npz", x=reference)
    out = tmp_path / "scores.json"
    argv = ["evaluate", str(DEFAULT_MODEL), "--scheduler", "s2n", "--model-calls", "3", "--num-images", "12",
            "--reference", str(tmp_path / "ref.npz"), "--metrics", "fid", "--output", str(out)]
    assert main(argv) == 0
    scores = json.loads(out.read_text())
    assert (scores["scheduler"], scores["model_calls"], scores["num_images"], scores["num_reference"]) == ("s2n", 3, 12, 40)
    assert np.isfinite(scores["fid"]) and scores["fid"] > 0
    with pytest.raises(SystemExit, match="not one of"):
        main(argv[:3] + ["nonsense"] + argv[4:])
    with pytest.raises(SystemExit, match="--update-card applies only to a pipeline folder"):
        main(["evaluate", str(tmp_path / "ref.npz"), "--update-card"])


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["IMAGES", "--scheduler", "bogus", "--num-images", "10"], "--scheduler, --num-images apply only to a pipeline folder"),
        (["IMAGES", "--num-reference", "-5"], "--num-reference must be >= 2"),
        (["IMAGES", "--output", "OUTDIR"], "--output .* is a folder; give a file name"),
        (["IMAGES", "--output", "AFILE/scores.json"], "is a file, not a folder"),
        (["MODEL", "--update-card"], "has no README.md model card to update"),
        (["mnist-ddpm", "--update-card"], "--update-card writes the model card of a folder you name; 'mnist-ddpm' is a shipped model"),
        (["MODEL", "--input-range", "0", "1"], "--input-range and --key read image arrays"),
        (["MODEL", "--key", "x"], "--input-range and --key read image arrays"),
        (["IMAGES", "--metrics", "confident", "--reference", "IMAGES"], "--reference applies to FID and KID; --metrics confident compare with no"),
        (["IMAGES", "--metrics", "is", "--num-reference", "50"], "--num-reference applies to FID and KID"),
        (["IMAGES", "--reference-key", "x"], "--reference-key picks an array of the --reference archive"),
        (["FOLDER", "--key", "x"], r"`key` \(--key\) does not apply to a folder of images"),
        (["FOLDER", "--input-range", "-1", "1"], r"`value_range` \(--input-range\) does not apply to a folder of images"),
        (["BROKEN"], "infoflow evaluate: .*cannot identify image file"),
        (["NOWEIGHTS"], "infoflow evaluate: .*diffusion_pytorch_model"),
        (["TINY16", "--reference", "IMAGES"], r"images of shape \(1, 16, 16\) differ in shape from the reference \(1, 28, 28\)"),
        (["IMAGES", "--metrics", "is"], r"needs at least 10 image\(s\) for is \(IS: one per split, 10 splits\), got 5"),
    ],
)
def test_evaluate_refuses_before_any_work(tmp_path, extra, message):
    """Each of these failed after sampling/scoring, or was ignored, or cut the reference short."""
    import shutil

    from diffusers_infoflow.cli import main
    from diffusers_infoflow.sampling import DEFAULT_MODEL

    np.savez(tmp_path / "images.npz", x=np.random.default_rng(0).integers(0, 256, size=(5, 28, 28), dtype=np.uint8))
    from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel

    tiny = UNet2DModel(sample_size=16, in_channels=1, out_channels=1, block_out_channels=(8, 8), layers_per_block=1, norm_num_groups=4,
                       down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"))
    DDPMPipeline(unet=tiny, scheduler=DDPMScheduler()).save_pretrained(tmp_path / "tiny16")
    (tmp_path / "outdir").mkdir()
    (tmp_path / "afile").write_text("")
    (tmp_path / "folder").mkdir()
    Image.fromarray(np.zeros((28, 28), dtype=np.uint8)).save(tmp_path / "folder" / "a.png")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "a.png").write_bytes(b"not a png")
    model = tmp_path / "model"
    shutil.copytree(DEFAULT_MODEL, model)
    (model / "README.md").unlink()
    shutil.copytree(model, tmp_path / "noweights", ignore=shutil.ignore_patterns("*.safetensors"))
    names = {"IMAGES": tmp_path / "images.npz", "OUTDIR": tmp_path / "outdir", "AFILE/scores.json": tmp_path / "afile" / "s.json",
             "MODEL": model, "TINY16": tmp_path / "tiny16", "FOLDER": tmp_path / "folder", "BROKEN": tmp_path / "broken",
             "NOWEIGHTS": tmp_path / "noweights"}
    argv = ["evaluate"] + [str(names.get(a, a)) for a in extra]
    if "--output" not in argv:
        argv += ["--output", str(tmp_path / "s.json")]
    with pytest.raises(SystemExit, match=message):
        main(argv)


def test_evaluate_against_mnist_test_reports_the_floor_of_real_digits_at_the_same_n(tmp_path, monkeypatch):
    """With the default reference, FID and KID of as many MNIST training digits against it (a small stand-in archive
    here), the scores generative_scores gives them; a set larger than the training split gets no floor."""
    from diffusers_infoflow.cli import main

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "mnist.npz", x_train=rng.integers(0, 256, size=(30, 28, 28), dtype=np.uint8),
             x_test=rng.integers(0, 256, size=(40, 28, 28), dtype=np.uint8))
    monkeypatch.setenv("INFOFLOW_MNIST", str(tmp_path / "mnist.npz"))

    def evaluate(n):
        np.save(tmp_path / "images.npy", rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8))
        main(["evaluate", str(tmp_path / "images.npy"), "--metrics", "fid", "kid", "--output", str(tmp_path / "s.json")])
        return json.loads((tmp_path / "s.json").read_text())

    report = evaluate(24)
    real = generative_scores(load_mnist("train", 24), load_mnist("test"), metrics=["fid", "kid"])
    assert report["fid_floor"] == pytest.approx(real["fid"], rel=1e-5) and report["fid_floor"] != report["fid"]
    assert report["kid_mean_floor"] == pytest.approx(real["kid_mean"], rel=1e-5, abs=1e-7)
    assert "fid_floor" not in evaluate(31) and "kid_mean_floor" not in evaluate(31)


def test_evaluate_update_card_writes_and_replaces_one_section(tmp_path):
    import shutil

    from diffusers_infoflow.cli import main
    from diffusers_infoflow.sampling import DEFAULT_MODEL

    model = tmp_path / "model"
    shutil.copytree(DEFAULT_MODEL, model)
    np.savez(tmp_path / "ref.npz", x=np.random.default_rng(0).integers(0, 256, size=(20, 28, 28), dtype=np.uint8))
    argv = ["evaluate", str(model), "--model-calls", "2", "--num-images", "6", "--reference", str(tmp_path / "ref.npz"),
            "--metrics", "fid", "--output", str(tmp_path / "s.json"), "--update-card"]
    main(argv)
    main(argv)
    card = (model / "README.md").read_text()
    assert card.count("## Evaluation") == 1 and card.startswith("---")  # metadata block intact
    fid = json.loads((tmp_path / "s.json").read_text())["fid"]
    assert f"| fid | {fid:.4g} |" in card and "--update-card" in card
    # the card's command reproduces the run: the same reference, its size and the feature network
    assert f"--metrics fid --reference {tmp_path / 'ref.npz'} --num-reference 10000 --feature-network mnist --update-card" in card


def test_generative_scorer_keeps_its_reference_and_counts_confident_digits(digit_like_images):
    from diffusers_infoflow.metrics import GenerativeScorer, load_mnist_classifier

    scorer = GenerativeScorer(digit_like_images, metrics=("fid", "kid", "confident"), kid_subsets=5, kid_subset_size=100)
    first, again = scorer.score(digit_like_images[:200]), scorer.score(digit_like_images[:200])
    assert first == again and first["num_reference"] == 400 and first["num_images"] == 200  # reference kept, images forgotten
    assert first == generative_scores(digit_like_images[:200], digit_like_images, metrics=("fid", "kid", "confident"),
                                      kid_subsets=5, kid_subset_size=100)
    with torch.no_grad():
        probabilities = load_mnist_classifier()(digit_like_images[:200]).softmax(-1)
    top, label = probabilities.max(-1)
    assert first["confident_fraction"] == pytest.approx(float((top > 0.9).double().mean()))
    shares = torch.bincount(label, minlength=10).double() / 200
    assert first["min_class_fraction"] == pytest.approx(float(shares.min()))
    assert first["class_fractions"] == pytest.approx(shares.tolist(), abs=1e-4)
    with pytest.raises(ValueError, match="need a `reference`"):
        GenerativeScorer(None, metrics=("fid",))


@pytest.mark.parametrize("batch_size", [4, 10])
def test_evaluate_under_accelerate_launch_with_two_processes_matches_one(tmp_path, batch_size):
    """Issue 13: the sample budget split between 2 CPU processes, features gathered, one FID: the same scores as
    one process with the same seed (10 samples in batches of 4: 2 batches on rank 0, 1 on rank 1; in one batch
    of 10: none on rank 1, which still takes part in every gather)."""
    import os
    import subprocess
    import sys

    from diffusers_infoflow.cli import main

    tiny_mnist_ddpm_pipeline(tmp_path / "model")
    np.savez(tmp_path / "ref.npz", x=np.random.default_rng(0).integers(0, 256, size=(30, 28, 28), dtype=np.uint8))
    args = ["evaluate", str(tmp_path / "model"), "--scheduler", "ddim", "--model-calls", "2", "--num-images", "10", "--batch-size", str(batch_size),
            "--reference", str(tmp_path / "ref.npz"), "--metrics", "fid", "kid", "confident"]
    assert main(args + ["--output", str(tmp_path / "one.json")]) == 0
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--main_process_port", "0",
              "-m", "diffusers_infoflow.cli"]
    done = subprocess.run(launch + args + ["--output", str(tmp_path / "two.json")], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "on 2 process(es)" in done.stdout
    one, two = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("one", "two"))
    assert (one["num_processes"], two["num_processes"], two["num_images"]) == (1, 2, 10)
    for key in ("fid", "kid_mean", "kid_std", "confident_fraction", "min_class_fraction", "class_fractions"):
        assert two[key] == pytest.approx(one[key], rel=1e-5, abs=1e-9), key


@pytest.mark.parametrize("started_by", ["process_state", "caller", "process_state, then an error"])
def test_process_state_destroys_the_process_group_it_started_before_the_interpreter_exits(tmp_path, started_by):
    """Left to the interpreter's teardown, Gloo's threads now and then abort a process that has finished its work
    (SIGABRT, ``terminate called without an active exception``; 2 of 30 two-process runs here): a group that
    ``process_state`` started is destroyed at exit, once however often it is called. A group the caller started
    (here accelerate's ``PartialState``, as an ``Accelerator`` does) is the caller's, and after an uncaught error
    the group is left as it was. An exit hook registered first runs last, so it sees the group as the interpreter
    is left with it."""
    import os
    import subprocess
    import sys

    script = tmp_path / "leave.py"
    script.write_text(  # each process reports in its own file: the two share one stdout
        "import atexit, os, pathlib, sys, torch\n"
        "report = lambda when: pathlib.Path(sys.argv[1], f'{os.environ[\"RANK\"]}.{when}').write_text(str(torch.distributed.is_initialized()))\n"
        "atexit.register(lambda: report('exit'))\n"
        "from accelerate import PartialState\n"
        "from diffusers_infoflow.sampling import process_state\n"
        f"if {started_by == 'caller'}: PartialState(cpu=True)\n"
        "process_state(); process_state()\n"
        "report('running')\n"
        f"if {'error' in started_by}: raise RuntimeError('stop')\n"
    )
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--main_process_port", "0"]
    done = subprocess.run(launch + [str(script), str(tmp_path)], env=env, capture_output=True, text=True, timeout=120)
    assert (done.returncode == 0) == ("error" not in started_by), done.stderr[-3000:]
    exits = [path.read_text() for path in tmp_path.glob("*.exit")]
    assert [(tmp_path / f"{rank}.running").read_text() for rank in (0, 1)] == ["True", "True"]
    # after an error the launcher stops the other rank, maybe before its exit hooks: the first to fail has reported
    assert exits == [str(started_by != "process_state")] * (len(exits) if "error" in started_by else 2)
    assert exits


_SHARDED_SCORER = """
import json, os, sys
import numpy as np, torch, torch.distributed as dist
from diffusers_infoflow.metrics import GenerativeScorer, process_shard

rng = np.random.default_rng(0)
reference = torch.from_numpy(rng.random((300, 1, 28, 28), dtype=np.float32))
images = torch.from_numpy(rng.random((129, 1, 28, 28), dtype=np.float32))
options = dict(metrics=("fid", "kid", "is"), kid_subset_size=50, is_splits=5, batch_size=64)
if len(sys.argv) > 2:  # one of two gloo processes
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{sys.argv[2]}", rank=int(sys.argv[1]), world_size=2)
scores = GenerativeScorer(reference, **options).score(process_shard(images))
if not dist.is_initialized() or dist.get_rank() == 0:
    print(json.dumps(scores))
if dist.is_initialized():
    dist.destroy_process_group()
"""


def test_kid_and_is_across_processes_with_uneven_batch_counts_match_one_process(tmp_path):
    """129 images in batches of 64 on 2 processes: 2 batches (65 images) on rank 0, 1 (64) on rank 1. torchmetrics
    gathered the KID/IS features batch by batch: the subsets then picked other images than in one process (KID
    10.80 against 7.01 on MNIST digits) and the unequal batch counts failed the gather."""
    import os
    import socket
    import subprocess
    import sys

    script = tmp_path / "score.py"
    script.write_text(_SHARDED_SCORER)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-2000:]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    ranks = [subprocess.Popen([sys.executable, str(script), str(rank), port], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for rank in (0, 1)]
    outputs = [rank.communicate(timeout=300) for rank in ranks]
    assert all(rank.returncode == 0 for rank in ranks), outputs[0][1][-2000:] + outputs[1][1][-2000:]
    single, sharded = json.loads(one.stdout), json.loads(outputs[0][0])
    assert sharded["num_images"] == 129
    for key in ("fid", "kid_mean", "kid_std", "is_mean", "is_std"):
        assert sharded[key] == pytest.approx(single[key], rel=1e-5, abs=1e-9), key
