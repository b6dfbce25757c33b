"""Hydra's submitit launchers, submitting only unfinished jobs (see :mod:`sweeps.launching`).

They live here because Hydra instantiates launcher classes only from the ``hydra_plugins``
namespace package; ``conf/hydra/launcher/*.yaml`` name them in ``_target_``.
"""

from hydra_plugins.hydra_submitit_launcher.submitit_launcher import LocalLauncher, SlurmLauncher

from sweeps.launching import SubmitUnfinished, check_slurm


class SkippingLocalLauncher(SubmitUnfinished, LocalLauncher):
    """``hydra/launcher=local``: submitit local processes, finished jobs not started."""


class SkippingSlurmLauncher(SubmitUnfinished, SlurmLauncher):
    """``hydra/launcher=slurm_*``: SLURM job arrays, finished jobs not submitted, partition checked."""

    def check_cluster(self) -> None:
        check_slurm(self.params.get("partition"))
