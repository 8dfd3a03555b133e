"""Energy-based models: RBM, Gaussian-Bernoulli RBM, DBN, DBM, and their partition
functions (exact sums, AIS, reverse AIS).  See each module's docstring for the math."""
from .partition import (
    PartitionEstimate,
    ais_betas,
    ais_log_partition,
    exact_log_partition,
    exact_log_partition_gaussian,
    reverse_ais_log_partition,
)
from .deep import DBM, DBN
from .rbm import RBM, GaussianBernoulliRBM

__all__ = ["RBM", "GaussianBernoulliRBM", "DBN", "DBM", "PartitionEstimate", "ais_betas",
           "ais_log_partition", "reverse_ais_log_partition", "exact_log_partition",
           "exact_log_partition_gaussian"]
