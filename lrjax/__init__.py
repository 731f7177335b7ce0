"""lrjax: every ``torch.optim.lr_scheduler`` as a pure, jittable JAX schedule, equal to torch.

Each function validates its arguments and returns a schedule ``schedule(step) -> lr`` whose value
is the learning rate torch's scheduler holds after ``step`` calls of ``scheduler.step()``.
"""

from lrjax import registry as registry
from lrjax import testing as testing
from lrjax._base import LRSchedule as LRSchedule
from lrjax._base import Schedule as Schedule
from lrjax._compose import chained_scheduler as chained_scheduler
from lrjax._compose import sequential_lr as sequential_lr
from lrjax._config import available as available_schedules
from lrjax._config import from_config as from_config
from lrjax._config import split_momentum as split_momentum
from lrjax._config import to_config as to_config
from lrjax._cosine import cosine_annealing_lr as cosine_annealing_lr
from lrjax._cosine import cosine_annealing_warm_restarts as cosine_annealing_warm_restarts
from lrjax._cyclic import cyclic_lr as cyclic_lr
from lrjax._cyclic import cyclic_momentum as cyclic_momentum
from lrjax._epoch import per_epoch as per_epoch
from lrjax._find_lr import FindLRResult as FindLRResult
from lrjax._find_lr import find_lr as find_lr
from lrjax._find_lr import plot_lr_find as plot_lr_find
from lrjax._lambda import lambda_lr as lambda_lr
from lrjax._lambda import multiplicative_lr as multiplicative_lr
from lrjax._linear import constant_lr as constant_lr
from lrjax._linear import linear_lr as linear_lr
from lrjax._linear import polynomial_lr as polynomial_lr
from lrjax._one_cycle import one_cycle_lr as one_cycle_lr
from lrjax._one_cycle import one_cycle_momentum as one_cycle_momentum
from lrjax._plateau import PlateauState as PlateauState
from lrjax._plateau import ReduceLROnPlateau as ReduceLROnPlateau
from lrjax._plateau import reduce_lr_on_plateau as reduce_lr_on_plateau
from lrjax._plateau_compose import PlateauSchedule as PlateauSchedule
from lrjax._plateau_compose import chained_plateau as chained_plateau
from lrjax._plateau_compose import sequential_plateau as sequential_plateau
from lrjax._plateau_optax import PlateauTransform as PlateauTransform
from lrjax._plateau_optax import StatefulPlateau as StatefulPlateau
from lrjax._plateau_optax import StatefulPlateauState as StatefulPlateauState
from lrjax._plateau_optax import plateau_lr as plateau_lr
from lrjax._plateau_optax import plateau_step as plateau_step
from lrjax._plateau_optax import scale_by_plateau as scale_by_plateau
from lrjax._plot import plot as plot
from lrjax._step import exponential_lr as exponential_lr
from lrjax._step import multi_step_lr as multi_step_lr
from lrjax._step import step_lr as step_lr
from lrjax._swa import swalr as swalr
from lrjax._torch import from_torch as from_torch

__version__ = "0.1.0"

__all__ = [
    "LRSchedule",
    "PlateauSchedule",
    "PlateauState",
    "PlateauTransform",
    "ReduceLROnPlateau",
    "StatefulPlateau",
    "StatefulPlateauState",
    "Schedule",
    "available_schedules",
    "from_config",
    "split_momentum",
    "to_config",
    "chained_plateau",
    "chained_scheduler",
    "constant_lr",
    "cosine_annealing_lr",
    "cosine_annealing_warm_restarts",
    "cyclic_lr",
    "cyclic_momentum",
    "exponential_lr",
    "FindLRResult",
    "find_lr",
    "from_torch",
    "lambda_lr",
    "linear_lr",
    "multi_step_lr",
    "multiplicative_lr",
    "one_cycle_lr",
    "one_cycle_momentum",
    "per_epoch",
    "plot",
    "plateau_lr",
    "plateau_step",
    "plot_lr_find",
    "polynomial_lr",
    "reduce_lr_on_plateau",
    "registry",
    "scale_by_plateau",
    "sequential_lr",
    "sequential_plateau",
    "step_lr",
    "swalr",
    "testing",
]
