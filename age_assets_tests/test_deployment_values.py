"""The deployment files (Helm values, image build) against the code: a renamed environment
variable, volume, pool or tag must fail here rather than on a cluster."""

from __future__ import annotations

import re
from pathlib import Path

import dagster as dg
import pytest
import yaml

from age_assets import definitions
from age_assets.assets.names import GPU_NODE_LABEL, TRAINING_POOL
from age_assets.definitions import backbones_from, build_defs

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
ENV_NAMES = {value for name, value in vars(definitions).items() if name.startswith("ENV_")}


@pytest.fixture(scope="module")
def values() -> dict:
    return yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())


@pytest.fixture(scope="module")
def deployment(values: dict) -> dict:
    (only,) = values["dagster-user-deployments"]["deployments"]
    return only


def test_every_variable_the_deployment_sets_is_one_the_code_reads(deployment: dict) -> None:
    names = {item["name"] for item in deployment["env"]}
    assert names <= ENV_NAMES, names - ENV_NAMES


def test_the_deployment_builds_definitions_with_the_k8s_executor(deployment: dict) -> None:
    env = {item["name"]: item["value"] for item in deployment["env"]}
    defs = build_defs(env)
    assert isinstance(defs.executor, dg.ExecutorDefinition) and defs.executor.name == "k8s"
    job = defs.resolve_implicit_global_asset_job_def()
    training = {f"{kind}_{b}" for kind in ("model", "classifier") for b in definitions.backbones_from(env)}
    assert training <= {node.name for node in job.graph.nodes}


def test_data_dir_is_the_shared_volume_mounted_in_every_pod(values: dict, deployment: dict) -> None:
    env = {item["name"]: item["value"] for item in deployment["env"]}
    mounts = {m["mountPath"]: m["name"] for m in deployment["volumeMounts"]}
    data_volume = mounts[env[definitions.ENV_DATA_DIR]]
    (claim,) = [v["persistentVolumeClaim"]["claimName"] for v in deployment["volumes"] if v["name"] == data_volume]
    volume = yaml.safe_load((DEPLOY / "helm" / "data-volume.yaml").read_text())
    assert volume["metadata"]["name"] == claim
    assert volume["spec"]["accessModes"] == ["ReadWriteMany"]
    assert deployment["includeConfigInLaunchedRuns"]["enabled"], "runs and steps must inherit the volume"


def test_the_code_server_loads_the_package_module(deployment: dict) -> None:
    args = deployment["dagsterApiGrpcArgs"]
    assert args[args.index("-m") + 1] == "age_assets"


def test_training_steps_ask_for_a_gpu_node_in_the_pool_the_instance_limits(deployment: dict) -> None:
    from dagster_k8s.job import DagsterK8sJobConfig, construct_dagster_k8s_job, get_user_defined_k8s_config

    env = {item["name"]: item["value"] for item in deployment["env"]}
    graph = build_defs(env).get_repository_def().asset_graph
    training = [dg.AssetKey(f"{kind}_{b}") for b in backbones_from(env) for kind in ("model", "classifier")]
    assert training and set(training) <= graph.get_all_asset_keys()
    for key in training:
        node = graph.get(key).assets_def
        assert node.op.pool == TRAINING_POOL
        job = construct_dagster_k8s_job(
            DagsterK8sJobConfig(job_image="age-assets:0.1.0-gpu", dagster_home="/opt/dagster/dagster_home",
                                instance_config_map="dagster-instance"),
            args=["dagster", "api", "execute_step"], job_name="step",
            user_defined_k8s_config=get_user_defined_k8s_config(node.op.tags),
        )
        pod = job.spec.template.spec
        assert pod.node_selector == {GPU_NODE_LABEL: "true"}
        assert [t.key for t in pod.tolerations] == ["nvidia.com/gpu"]
        assert pod.containers[0].resources.limits == {"nvidia.com/gpu": "1"}
    instance = yaml.safe_load((Path(__file__).resolve().parents[1] / "data" / "dagster" / "dagster.yaml").read_text())
    assert instance["concurrency"]["pools"]["default_limit"] == 1


def test_the_image_installs_the_pinned_package_and_serves_the_code_location() -> None:
    containerfile = (DEPLOY / "images" / "Containerfile").read_text()
    assert "-c /tmp/src/requirements/constraints.txt" in containerfile
    stages = dict(re.findall(r"^FROM \S+ AS (\w+)\n(.*?)(?=^FROM |\Z)", containerfile, re.S | re.M))
    assert '"-m", "age_assets"' in stages["code"] and "code-server" in stages["code"]
    assert '"age-assets", "serve"' in stages["serve"]
    assert f"{definitions.ENV_DATA_DIR}=/data" in stages["install"]
    build = (DEPLOY / "images" / "build.sh").read_text()
    for target in ("code", "gpu", "serve"):
        assert re.search(rf"^\s+{target}\) build .*--target {'serve' if target == 'serve' else 'code'}", build, re.M)
    assert "and-cuda" in build
