"""``runner.precision``: the one mapping of ``harness.precisions``'s dtype names to torch dtypes, the
table's roundoffs and ranges as torch reports them, and what each precision does to a model, its
inputs and the step."""
import pytest
import torch
from torch import nn

from harness import precisions
from harness.runner import optim, precision
from models import UnsupportedError


def test_every_dtype_name_of_the_table_is_a_torch_floating_dtype():
    names = set(precisions.COMPUTE_DTYPES) | {p.dtype_name for p in precisions.TABLE} | {
        p.autocast_dtype_name for p in precisions.TABLE if p.autocast_dtype_name}
    for name in names:
        dtype = precision.torch_dtype(name)
        assert isinstance(dtype, torch.dtype) and dtype.is_floating_point and str(dtype) == "torch." + name


@pytest.mark.parametrize("name", precisions.COMPUTE_DTYPES)
def test_unit_roundoff_is_the_dtypes_own_eps_over_two_and_narrow_range_is_float16s(name):
    info = torch.finfo(precision.torch_dtype(name))
    assert precisions.DTYPE[name].unit_roundoff == info.eps / 2
    assert precisions.DTYPE[name].narrow_range == (info.max < 1e5)  # float16: 65504; the others ~3e38


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, x, ids):
        return self.lin(x) + ids[:, :1]

    def loss(self, out, target):
        return ((out.float() - target.float()) ** 2).mean()


@pytest.mark.parametrize("name", precisions.NAMES)
def test_prepare_casts_model_and_floating_inputs_exactly_where_the_table_says(name):
    row = precisions.get(name)
    x, ids, y = torch.randn(2, 4), torch.arange(8).reshape(2, 4), torch.randn(2, 4)
    model, (x2, ids2), y2 = precision.prepare(Tiny(), (x, ids), y, name, "cpu")
    want = precision.torch_dtype(row.dtype_name) if row.casts_model else torch.float32
    assert model.lin.weight.dtype == x2.dtype == y2.dtype == want
    assert ids2.dtype == torch.int64  # integers are never cast


@pytest.mark.parametrize("name", precisions.NAMES)
def test_autocast_runs_the_products_in_the_tables_autocast_dtype_or_says_unsupported(name):
    row = precisions.get(name)
    a = torch.randn(4, 4)
    try:
        with precision.autocast("cpu", name):
            got = (a @ a).dtype
    except (UnsupportedError, RuntimeError) as exc:  # found by trying: this build's CPU autocast refuses
        # the dtype (1.10 raises its own RuntimeError, which the runner's classify calls unsupported)
        assert row.autocast_dtype_name is not None and "utocast" in str(exc), exc
        return
    want = row.autocast_dtype_name or "float32"
    assert got == precision.torch_dtype(want)


@pytest.mark.parametrize("name", precisions.NAMES)
def test_the_train_step_scales_the_loss_on_the_tables_devices_only(name):
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        model = Tiny().to(device)
        train = optim.TrainStep(model, model, (), None, device, name, precision.autocast)
        scaled = device in precisions.get(name).loss_scaling_devices
        assert (train.scaler is not None) == scaled and train.description.endswith(", GradScaler") == scaled
