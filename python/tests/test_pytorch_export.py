"""`cortexfit export` loads into neuralpredictors, which then predicts what cortexfit predicts.

Both export formats: PyTorch's own `.pth` and `.safetensors`. Needs torch, neuralpredictors
(0.3.0) and, for the safetensors file, safetensors; where they are not installed (CI does not
install torch: it is large) the test skips and says why.
"""

import collections
import collections.abc
import sys
import types

import numpy as np
import pytest

torch = pytest.importorskip(
    "torch", reason="torch is not installed: the export is not checked against neuralpredictors"
)
# neuralpredictors 0.3.0 predates Python 3.10's removal of these aliases and imports
# torchvision, which its model classes do not use (as ../shared/fixtures/pytorch/make_fixture.py).
collections.Iterable = collections.abc.Iterable
collections.Mapping = collections.abc.Mapping
if "torchvision" not in sys.modules:
    try:
        import torchvision  # noqa: F401
    except ImportError:
        sys.modules["torchvision"] = types.ModuleType("torchvision")
pytest.importorskip(
    "neuralpredictors",
    reason="neuralpredictors is not installed: the export is not checked against it",
)

TOLERANCE = 1e-5


@pytest.mark.parametrize("name", ["model.pth", "model.safetensors"])
def test_export_loads_into_neuralpredictors_and_predicts_the_same(
    cli, sim, trained, tmp_path, name
):
    dataset, _ = sim
    out = tmp_path / name
    if name.endswith(".safetensors"):
        pytest.importorskip(
            "safetensors.torch", reason="safetensors is not installed: the export cannot be loaded"
        )
    code = cli("export", "--run", trained.path, "--out", out).stdout
    if name.endswith(".pth"):
        # PyTorch's own format loads with the restricted unpickler too (the default since 2.6).
        state = torch.load(out, map_location="cpu", weights_only=True)
        assert all(t.dtype in (torch.float32, torch.int64) for t in state.values())
    namespace = {}
    exec(code, namespace)  # the printed lines: build the model, load_state_dict (strict), eval
    model = namespace["model"]
    inputs = trained.inputs(dataset, "test")
    expected = trained.predict(inputs["images"], inputs["behavior"], inputs["pupil_center"])
    with torch.no_grad():
        got = model(torch.from_numpy(inputs["images"]), data_key=trained.data_keys[0]).numpy()
    diff = float(np.abs(got - expected).max())
    print(f"max |neuralpredictors - cortexfit| = {diff:.3e} over {got.size} predictions")
    assert got.shape == expected.shape
    assert diff <= TOLERANCE
