"""The deployment files (Helm values, image build) against the code: a renamed environment
variable, volume, pool or tag must fail here rather than on a cluster."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path

import dagster as dg
import pytest
import yaml

from age_assets import definitions
from age_assets.assets.names import GPU_NODE_LABEL, ONE_GPU_ON_KUBERNETES, TRAINING_POOL
from age_assets.definitions import backbones_from, build_defs

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
ENV_NAMES = {value for name, value in vars(definitions).items() if name.startswith("ENV_")}
RELEASE, NAMESPACE = "dagster", "dagster"
"""A release name and namespace to render the chart's settings with; any would do."""


@pytest.fixture(scope="module")
def values() -> dict:
    return yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())


@pytest.fixture(scope="module")
def deployment(values: dict) -> dict:
    (only,) = values["dagster-user-deployments"]["deployments"]
    return only


def snake(name: str) -> str:
    """The chart's camelCase value names as dagster.yaml and dagster-k8s spell them."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def run_launcher_config(values: dict) -> dict:
    """The run launcher's config in dagster.yaml as the chart renders it from
    runLauncher.config.k8sRunLauncher (template dagsterYaml.runLauncher.k8s): keys in snake case,
    config maps and secrets by name, runK8sConfig's parts as run_k8s_config's, plus what the chart
    sets itself."""
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    config = {"load_incluster_config": True, "job_namespace": NAMESPACE, "service_account_name": RELEASE,
              "dagster_home": "/opt/dagster/dagster_home", "instance_config_map": f"{RELEASE}-instance",
              "postgres_password_secret": f"{RELEASE}-postgresql-secret"}
    for key, value in launcher.items():
        if key in ("envConfigMaps", "envSecrets"):
            value = [item["name"] for item in value]
        elif key == "runK8sConfig":
            value = {snake(part): part_config for part, part_config in value.items()}
        config[snake(key)] = value
    return config


def code_location_container_context(deployment: dict) -> dict:
    """What the chart passes on from a user deployment with includeConfigInLaunchedRuns (helper
    dagsterUserDeployments.k8sContainerContext): the code location's container context, which
    K8sRunLauncher and k8s_job_executor merge over their own settings for every run and step pod."""
    k8s: dict = {"image_pull_policy": deployment["image"]["pullPolicy"],
                 "env_config_maps": [f"{RELEASE}-{deployment['name']}-user-env",
                                     *(item["name"] for item in deployment.get("envConfigMaps", []))],
                 "namespace": NAMESPACE, "service_account_name": f"{RELEASE}-user-deployments",
                 "run_k8s_config": {"pod_spec_config": {"automount_service_account_token": True}}}
    if deployment.get("envSecrets"):
        k8s["env_secrets"] = [item["name"] for item in deployment["envSecrets"]]
    for key in ("volumeMounts", "volumes", "labels", "resources", "schedulerName"):
        if deployment.get(key):
            k8s[snake(key)] = deployment[key]
    if isinstance(deployment.get("env"), list):
        k8s["env"] = deployment["env"]
    return {"k8s": k8s}


def step_pod(values: dict, deployment: dict, step_tags: Mapping[str, str]):
    """A step's pod as k8s_job_executor builds it: the run launcher's settings, under the code
    location's container context, under the step's own ``dagster-k8s/config`` tag."""
    from dagster_k8s.container_context import K8sContainerContext
    from dagster_k8s.job import (
        DagsterK8sJobConfig,
        UserDefinedDagsterK8sConfig,
        construct_dagster_k8s_job,
        get_user_defined_k8s_config,
    )

    launcher = run_launcher_config(values)
    shared = ("image_pull_policy", "service_account_name", "env_config_maps", "env_secrets", "env_vars",
              "volume_mounts", "volumes", "labels", "resources", "scheduler_name", "security_context")
    context = K8sContainerContext(
        namespace=launcher["job_namespace"], **{key: launcher.get(key) for key in shared},
        run_k8s_config=UserDefinedDagsterK8sConfig.from_dict(launcher.get("run_k8s_config", {})),
    ).merge(K8sContainerContext.create_from_config(code_location_container_context(deployment)))
    context = context.merge(K8sContainerContext(run_k8s_config=get_user_defined_k8s_config(step_tags)))
    job = construct_dagster_k8s_job(
        DagsterK8sJobConfig(job_image=f"{deployment['image']['repository']}:{deployment['image']['tag']}",
                            dagster_home=launcher["dagster_home"],
                            instance_config_map=launcher["instance_config_map"]),
        args=["dagster", "api", "execute_step"], job_name="step", user_defined_k8s_config=context.run_k8s_config,
    )
    return job.spec.template.spec


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
    instance = yaml.safe_load((ROOT / "data" / "dagster" / "dagster.yaml").read_text())
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


def test_the_run_launcher_values_are_config_the_pinned_k8s_run_launcher_accepts(values: dict) -> None:
    from dagster._config import validate_config
    from dagster_k8s import K8sRunLauncher

    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    result = validate_config(K8sRunLauncher.config_type(), run_launcher_config(values))
    assert result.success, [error.message for error in result.errors or []]


def test_every_step_pod_gets_the_code_locations_volume_env_and_requests(values: dict, deployment: dict) -> None:
    env = {item["name"]: item["value"] for item in deployment["env"]}
    graph = build_defs(env).get_repository_def().asset_graph
    ops = {graph.get(key).assets_def.op for key in graph.materializable_asset_keys}
    assert {TRAINING_POOL, None} <= {op.pool for op in ops}
    mount = {m["name"]: m["mountPath"] for m in deployment["volumeMounts"]}
    for op in ops:
        pod = step_pod(values, deployment, op.tags)
        (container,) = pod.containers
        assert {(m.name, m.mount_path) for m in container.volume_mounts} == set(mount.items())
        claims = {v.name: v.persistent_volume_claim.claim_name for v in pod.volumes if v.persistent_volume_claim}
        assert claims == {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in deployment["volumes"]}
        assert env.items() <= {e.name: e.value for e in container.env}.items()
        assert container.resources.requests == deployment["resources"]["requests"]
        gpu = (container.resources.limits or {}).get("nvidia.com/gpu")
        assert gpu == ("1" if op.pool == TRAINING_POOL else None), op.name


def test_the_gpu_tag_is_config_the_step_executor_accepts(deployment: dict) -> None:
    """Also as the per-step override that deploy/kubernetes.md offers for another cluster's labels."""
    from dagster_k8s.job import USER_DEFINED_K8S_CONFIG_KEY, UserDefinedDagsterK8sConfig, get_user_defined_k8s_config

    (key,) = ONE_GPU_ON_KUBERNETES
    assert key == USER_DEFINED_K8S_CONFIG_KEY
    config = ONE_GPU_ON_KUBERNETES[key]
    parsed = get_user_defined_k8s_config({key: json.dumps(config)})
    assert parsed == UserDefinedDagsterK8sConfig.from_dict(config)
    env = {item["name"]: item["value"] for item in deployment["env"]}
    job = build_defs(env).resolve_implicit_global_asset_job_def()
    step = f"model_{backbones_from(env)[0]}"
    dg.validate_run_config(job, {"execution": {"config": {"per_step_k8s_config": {step: config}}}})


def test_the_documented_gpu_request_is_the_code_tag() -> None:
    guide = (DEPLOY / "kubernetes.md").read_text()
    (block,) = re.findall(r"```yaml\n(.*?)```", guide, re.S)
    assert yaml.safe_load(block) == ONE_GPU_ON_KUBERNETES["dagster-k8s/config"]


def test_the_chart_limits_pools_as_the_local_instance_does(values: dict, tmp_path: Path) -> None:
    """The chart writes concurrency.pools and .runs into dagster.yaml in snake case (template
    dagsterYaml.concurrency) when concurrency.enabled; the pinned Dagster must load that, and agree
    with the instance `make` runs (data/dagster/dagster.yaml)."""
    concurrency = values["concurrency"]
    assert concurrency["enabled"] is True
    rendered = {part: {snake(key): value for key, value in settings.items()}
                for part, settings in concurrency.items() if part != "enabled"}
    local = yaml.safe_load((ROOT / "data" / "dagster" / "dagster.yaml").read_text())["concurrency"]
    assert rendered == local
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump({"concurrency": rendered}))
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        pools = instance.get_concurrency_config().pool_config
    assert pools.default_pool_limit == concurrency["pools"]["defaultLimit"]
