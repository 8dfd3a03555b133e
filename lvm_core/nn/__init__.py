"""Neural-network building blocks on the functional pairs: weight
initialisation (Glorot & Bengio 2010; He et al. 2015), the MLP (Bishop PRML
ch. 5) and optimizers as functions (Adam, Kingma & Ba 2015; AdamW, Loshchilov
& Hutter 2019; SGD with momentum, Sutskever et al. 2013).
"""
from .embedding import Embedding
from .init import INIT_SCHEMES, init_linear
from .mlp import ACTIVATIONS, MLP, MLPCache, get_activation
from .optim import adam, clip_grad_norm, sgd
from .recurrent import GRUCell, LSTMCell

__all__ = ["init_linear", "INIT_SCHEMES", "MLP", "MLPCache", "ACTIVATIONS",
           "get_activation", "adam", "sgd", "clip_grad_norm",
           "Embedding", "GRUCell", "LSTMCell"]
