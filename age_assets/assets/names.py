"""Names the assets share: groups, the training pool, the evaluated splits, run tags."""

DATA = "data"
MODELS = "models"
EVALUATION = "evaluation"
"""Asset groups: data preparation, everything trained or fitted, the report."""

TRAINING_POOL = "gpu"
"""Training steps share this concurrency pool; the instance limits it to one (dagster.yaml)."""

GPU_NODE_LABEL = "nvidia.com/gpu.present"
"""The node label NVIDIA's GPU operator (GPU feature discovery) sets on nodes with a GPU."""

ONE_GPU_ON_KUBERNETES = {"dagster-k8s/config": {
    "container_config": {"resources": {"limits": {"nvidia.com/gpu": "1"}}},
    "pod_spec_config": {"node_selector": {GPU_NODE_LABEL: "true"},
                        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]},
}}
"""Under dagster-k8s' step executor each training step's pod asks for one GPU on a GPU node
(tolerating the taint such nodes usually carry); other executors ignore this tag."""

EVALUATED = ("valid", "test")
"""The splits every trained asset predicts: valid for fitting ensembles and checks, test for the report."""

CONFIGURATION_TAG = "age_assets/configuration"
"""Run tag naming the configuration a job runs with: best_cpu (the code's defaults), quick or gpu."""
