"""Typed configs: every shipped YAML loads; overrides get the right types; every problem is reported."""

from pathlib import Path

import pytest

from linctl.config.load import apply_overrides, load_config, read_yaml
from linctl.data.options import MlmOptions
from linctl.errors import ConfigError
from linctl.train.config import config_schema

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").rglob("*.yaml"))


def test_configs_exist():
    assert CONFIGS, "configs/ holds no YAML"


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(p.parents[2])))
def test_shipped_config_validates(path):
    schema = config_schema(path, read_yaml(path))
    config = load_config(path, schema)
    assert schema.model_validate(config.model_dump(mode="json")) == config  # written back, read the same


def test_overrides_take_yaml_types():
    data = apply_overrides({"a": {"x": 1}}, ["a.b=3", "a.c=true", "d=0.5", "e=hello", "a.x=null", "f=[1, 2]"])
    assert data == {"a": {"x": None, "b": 3, "c": True}, "d": 0.5, "e": "hello", "f": [1, 2]}


@pytest.mark.parametrize("text", ["novalue", "=3", "a..b=1"])
def test_malformed_override_is_refused(text):
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        apply_overrides({}, [text])


def test_override_through_a_value_is_refused():
    with pytest.raises(ConfigError, match="a is a value"):
        apply_overrides({"a": 1}, ["a.b=2"])


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "prepare-mlm-test.yaml"
    path.write_text(text)
    return path


def test_every_problem_is_listed_with_file_key_value_and_rule(tmp_path):
    path = write(
        tmp_path,
        "metadata_files: [m.txt]\nvocab_file: v.txt\nmax_seq_length: 4\nmasked_lm_prob: 2\nbogus: 1\n",
    )
    with pytest.raises(ConfigError) as info:
        load_config(path, MlmOptions)
    lines = str(info.value).splitlines()
    assert len(lines) == 3
    assert all(line.startswith(f"{path}: ") for line in lines)
    text = str(info.value)
    assert "max_seq_length = 4: Input should be greater than or equal to 8" in text
    assert "masked_lm_prob = 2: Input should be less than 1" in text
    assert "bogus: unknown key; allowed here:" in text and "max_seq_length" in text


def test_missing_required_and_cross_field_rules(tmp_path):
    with pytest.raises(ConfigError, match="vocab_file: required"):
        load_config(write(tmp_path, "metadata_files: [m.txt]\n"), MlmOptions)
    path = write(tmp_path, "metadata_files: [m.txt]\nvocab_file: v\nmax_seq_length: 16\noverlap_size: 13\n")
    with pytest.raises(ConfigError, match=r"overlap_size \(13\) must be < max_seq_length - 3 \(13\)"):
        load_config(path, MlmOptions)


def test_overrides_are_validated_like_the_file(tmp_path):
    path = write(tmp_path, "metadata_files: [m.txt]\nvocab_file: v.txt\n")
    assert load_config(path, MlmOptions, ["max_seq_length=64"]).max_seq_length == 64
    with pytest.raises(ConfigError, match="dupe_factor = 'many'"):
        load_config(path, MlmOptions, ["dupe_factor=many"])


def test_bad_yaml_names_the_line(tmp_path):
    with pytest.raises(ConfigError, match=r"prepare-mlm-test.yaml:2: not valid YAML"):
        load_config(write(tmp_path, "a: 1\nb: c: d\n"), MlmOptions)
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(write(tmp_path, "- 1\n- 2\n"), MlmOptions)
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "absent.yaml", MlmOptions)


def test_config_names_and_sections_pick_schemas(tmp_path):
    from linctl.models.file import ModelFile
    from linctl.train.config import RunConfig

    model = {"model": {"kind": "encoder"}}
    assert config_schema(tmp_path / "prepare-mlm-custom.yaml", model) is MlmOptions
    assert config_schema(tmp_path / "wt2-softmax.yaml", {**model, "train": {}}) is RunConfig
    assert config_schema(tmp_path / "tiny.yaml", model) is ModelFile
    assert config_schema(tmp_path / "empty.yaml", {}) is RunConfig  # its missing sections get named
