"""Hugging Face models through the harness: built from config, their own loss, their own switch."""
import inspect
import os
import re
import subprocess
import sys

import pytest
import torch
import transformers

import models
from harness.sources import NotInRelease
from harness.sources.transformers_source import TransformersSource
from models import UnsupportedError, init_parameters
from models._base import HAS_NON_REENTRANT_CHECKPOINT
from tests.sources.helpers import first_step, library_grads, same, same_grads

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

GPT2 = {"n_layer": 2, "n_embd": 32, "n_head": 2, "vocab_size": 101}
BERT = {"num_hidden_layers": 1, "hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64,
        "vocab_size": 103}


def _library_gpt2() -> torch.nn.Module:
    # The library's own model, dropout switched off through its own config as the harness does.
    config = transformers.GPT2Config(resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, summary_first_dropout=0.0,
                                     use_cache=False, **GPT2)
    net = transformers.GPT2LMHeadModel(config)
    init_parameters(net, 0)
    return net


def test_a_decoder_lm_trains_on_its_own_loss_as_the_library_computes_it():
    _, inputs, target, outputs, grads = first_step("transformers:GPT2LMHeadModel", "train", 16, {"config": GPT2})
    ids, labels = inputs
    assert ids.shape == (2, 16) and int(ids.max()) < 101 and torch.equal(ids, labels) and target is None
    net = _library_gpt2().train()
    out = net(input_ids=ids, labels=labels)
    out.loss.backward()
    assert same(outputs, out) and same_grads(grads, library_grads(net))


def test_eval_runs_the_forward_without_labels():
    _, inputs, _, outputs, _ = first_step("transformers:GPT2LMHeadModel", "eval", 16, {"config": GPT2})
    net = _library_gpt2().eval()
    with torch.no_grad():
        assert same(outputs, net(input_ids=inputs[0]))  # logits only: no labels, no loss


def test_an_encoder_classifier_gets_class_labels_and_zero_dropout():
    model = models.create_model("transformers:BertForSequenceClassification", 16, {"config": BERT})
    assert model.net.config.hidden_dropout_prob == 0.0 and model.net.config.attention_probs_dropout_prob == 0.0
    (ids, labels), _ = model.example_inputs(3, 16, models.SeededGenerator(0))
    assert ids.shape == (3, 16) and labels.shape == (3,) and int(labels.max()) < model.net.config.num_labels
    kept = models.create_model("transformers:BertForSequenceClassification", 16,
                               {"config": dict(BERT, hidden_dropout_prob=0.2)})
    assert kept.net.config.hidden_dropout_prob == 0.2  # an override the scenario gave is kept


def test_sizes_are_sequence_lengths_within_the_position_table():
    spec = models.get_spec("transformers:GPT2LMHeadModel", {"config": dict(GPT2, n_positions=24)})
    assert spec.default_sizes == [24] and spec.size_error(24) is None
    assert "exceeds the 24 positions" in spec.size_error(25)


def test_config_fields_and_classes_this_release_lacks_are_not_in_release():
    version = TransformersSource().version()
    with pytest.raises(NotInRelease, match="^not in transformers %s: GPT2Config has no field 'n_layers' .*did "
                                           "you mean n_layer" % re.escape(version)):
        models.get_spec("transformers:GPT2LMHeadModel", {"config": {"n_layers": 2}})
    with pytest.raises(NotInRelease, match=": no model 'GPT2LMHeadModl' \\(did you mean GPT2LMHeadModel"):
        models.get_spec("transformers:GPT2LMHeadModl")


@pytest.mark.skipif(hasattr(transformers, "Qwen2ForCausalLM"), reason="this transformers has Qwen2 (4.37 and later)")
def test_a_class_and_a_field_of_later_releases_name_those_releases():
    version = TransformersSource().version()
    with pytest.raises(NotInRelease) as err:
        models.get_spec("transformers:Qwen2ForCausalLM")
    assert str(err.value) == "not in transformers %s: no model 'Qwen2ForCausalLM' (first in transformers " \
                             "4.37.0)" % version
    with pytest.raises(NotInRelease) as err:
        models.get_spec("transformers:LlamaForCausalLM", {"config": {"num_key_value_heads": 2}})
    assert str(err.value) == "not in transformers %s: LlamaConfig has no field 'num_key_value_heads' (first in " \
                             "transformers 4.31.0)" % version
    assert err.value.missing == "LlamaConfig.num_key_value_heads" and err.value.release == version


@pytest.mark.parametrize("mode", ["reentrant", "non_reentrant"])
def test_checkpointing_goes_through_gradient_checkpointing_enable(mode):
    net = transformers.GPT2LMHeadModel
    enable = getattr(net, "activation_checkpointing_enable", None) or net.gradient_checkpointing_enable
    takes_kwargs = bool({"activation_checkpointing_kwargs", "gradient_checkpointing_kwargs"}
                        & set(inspect.signature(enable).parameters))
    # The library's reason comes first: it holds whatever the torch.
    if mode == "non_reentrant" and not takes_kwargs:
        expect = "reentrant\\) only"
    elif not HAS_NON_REENTRANT_CHECKPOINT and (mode == "non_reentrant" or takes_kwargs):
        expect = "use_reentrant"
    else:
        expect = None
    if expect is not None:
        with pytest.raises(UnsupportedError, match=expect):
            first_step("transformers:GPT2LMHeadModel", "train", 16, {"config": GPT2}, checkpoint=mode)
        # the refusal and its reason are asserted; the checkpointed step itself cannot run here: say so
        pytest.skip("checkpoint=%s is unsupported with these releases (reason %r asserted); the checkpointed "
                    "step runs where the library and torch support it" % (mode, expect))
    model, _, _, outputs, grads = first_step("transformers:GPT2LMHeadModel", "train", 16, {"config": GPT2},
                                             checkpoint=mode)
    _, _, _, plain_outputs, plain_grads = first_step("transformers:GPT2LMHeadModel", "train", 16, {"config": GPT2})
    assert model.checkpointing_on  # the library's own flag
    assert same(outputs, plain_outputs)
    assert all(torch.allclose(grads[n], plain_grads[n], rtol=1e-5, atol=1e-8) for n in plain_grads)


def test_a_model_the_library_fails_to_import_here_is_unsupported_here_and_the_others_run(tmp_path):
    # transformers 4.50-4.51 on torch 2.0 raise importing every model module (they use torch.compiler, which
    # came in 2.1): a fact about that environment. Made real here by blocking one model's module in a fresh
    # interpreter: the library's own lazy import fails for GPT2 and for nothing else.
    scenario = tmp_path / "s.toml"
    scenario.write_text(
        '[matrix]\nmodel = ["transformers:GPT2LMHeadModel", "transformers:BertForSequenceClassification"]\n'
        'mode = ["eval"]\nbatch_size = [2]\nsize = [8]\nprecision = ["fp32"]\ncheckpoint = ["none"]\n'
        'device = ["cpu"]\n[config."transformers:GPT2LMHeadModel"]\nn_layer = 1\nn_embd = 32\nn_head = 2\n'
        '[config."transformers:BertForSequenceClassification"]\nnum_hidden_layers = 1\nhidden_size = 32\n'
        'num_attention_heads = 2\nintermediate_size = 64\n')
    code = ("import sys\n"
            "sys.modules['transformers.models.gpt2.modeling_gpt2'] = None\n"
            "from harness.scenario import spec\n"
            "for case, not_run in spec.expand(spec.load(sys.argv[1])):\n"
            "    print(case.model, not_run.status if not_run else 'runs', '|', not_run.reason if not_run else '')\n")
    proc = subprocess.run([sys.executable, "-c", code, str(scenario)], cwd=ROOT, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=ROOT), timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = dict(line.split(" ", 1) for line in proc.stdout.strip().splitlines())
    assert lines["transformers:BertForSequenceClassification"].startswith("runs")
    gpt2 = lines["transformers:GPT2LMHeadModel"]
    assert gpt2.startswith("unsupported | transformers %s cannot provide 'GPT2LMHeadModel' with torch %s here: " % (
        transformers.__version__, torch.__version__.split("+")[0])), gpt2
    assert "modeling_gpt2" in gpt2, gpt2  # the library's own words
