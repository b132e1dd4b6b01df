"""The built-in registries' names and option fields, as data: the CLI's first pass
checks a config's names and option ranges against this table before PyTorch is imported
(importing a registry imports PyTorch: seconds), so a misspelt name or an out-of-range
value is answered at once. Generated from the registries by
tests/foundation/test_builtin_names.py, which also fails when they no longer match it. A
field is (annotation, constraints, required); custom validators are not here: the full
check that follows applies them.
"""

# ruff: noqa: E501
from typing import Any, Literal

DATASETS = ('cifar10', 'cifar100', 'digits', 'emnist_letters', 'fashion_mnist', 'image_folder', 'kmnist', 'mnist', 'mnist1d', 'svhn', 'tiny_shakespeare')
MODELS = ('cnn', 'gpt', 'mlp', 'resnet', 'transformer1d', 'vit')
REGULARIZERS = ('augment', 'distillation', 'drop_path', 'dropconnect', 'dropout', 'early_stopping', 'elastic_net', 'ema', 'freq_mask', 'grad_clip', 'l1', 'l2', 'label_smoothing', 'mix', 'norm', 'spectral_norm', 'swa', 'time_mask', 'token_dropout', 'weight_decay', 'weight_tying')

# each regularizer's params
REGULARIZER_FIELDS: dict[str, dict[str, tuple[Any, dict[str, Any], bool]]] = {
    'augment': {
        'crop_padding': (int, {'ge': 0}, False),
        'hflip': (bool, {}, False),
        'color_jitter': (float, {'ge': 0.0, 'le': 1.0}, False),
        'policy': (Literal['none', 'randaugment', 'autoaugment', 'trivialaugment'], {}, False),
        'randaugment_n': (int, {'ge': 1}, False),
        'randaugment_m': (int, {'ge': 0, 'le': 30}, False),
        'erasing': (float, {'ge': 0.0, 'le': 1.0}, False),
        'shift': (int, {'ge': 0}, False),
        'noise': (float, {'ge': 0.0}, False),
        'scale': (float, {'ge': 0.0, 'lt': 1.0}, False),
        'token_mask': (float, {'ge': 0.0, 'lt': 1.0}, False),
    },
    'distillation': {
        'temperature': (float, {'gt': 0.0}, False),
        'alpha': (float, {'ge': 0.0, 'le': 1.0}, False),
        'teacher': (Any, {}, True),
    },
    'drop_path': {
        'rate': (float, {'ge': 0.0, 'lt': 1.0}, True),
    },
    'dropconnect': {
        'p': (float, {'ge': 0.0, 'lt': 1.0}, True),
        'layers': (Literal['hidden', 'all'], {}, False),
    },
    'dropout': {
        'p': (float, {'ge': 0.0, 'lt': 1.0}, True),
        'embed_p': (float, {'ge': 0.0, 'lt': 1.0}, False),
        'attn_p': (float, {'ge': 0.0, 'lt': 1.0}, False),
        'head_p': (float, {'ge': 0.0, 'lt': 1.0}, False),
        'sites': (list[Literal['attn', 'ffn']], {}, False),
    },
    'early_stopping': {
        'patience': (int, {'ge': 1}, False),
        'min_delta': (float, {'ge': 0.0}, False),
        'monitor': (Literal['val_loss', 'val_acc'], {}, False),
        'restore_best': (bool, {}, False),
    },
    'elastic_net': {
        'value': (float, {'ge': 0.0}, False),
        'l1_ratio': (float, {'ge': 0.0, 'le': 1.0}, False),
        'include_bias_and_norm': (bool, {}, False),
    },
    'ema': {
        'decay': (float, {'gt': 0.0, 'lt': 1.0}, False),
        'use_buffers': (bool, {}, False),
    },
    'freq_mask': {
        'width': (int, {'ge': 1}, True),
        'count': (int, {'ge': 1, 'le': 16}, False),
    },
    'grad_clip': {
        'mode': (Literal['norm', 'value', 'agc'], {}, False),
        'threshold': (float | None, {'gt': 0.0}, False),
        'eps': (float, {'gt': 0.0}, False),
    },
    'l1': {
        'value': (float, {'ge': 0.0}, False),
        'include_bias_and_norm': (bool, {}, False),
    },
    'l2': {
        'value': (float, {'ge': 0.0}, False),
        'include_bias_and_norm': (bool, {}, False),
    },
    'label_smoothing': {
        'epsilon': (float, {'ge': 0.0, 'lt': 1.0}, False),
    },
    'mix': {
        'mixup_alpha': (float, {'ge': 0.0}, False),
        'cutmix_alpha': (float, {'ge': 0.0}, False),
        'prob': (float, {'ge': 0.0, 'le': 1.0}, False),
        'switch_prob': (float, {'ge': 0.0, 'le': 1.0}, False),
    },
    'norm': {
        'kind': (Literal['none', 'batchnorm', 'layernorm', 'rmsnorm', 'groupnorm'], {}, True),
        'position': (Literal['pre', 'post'], {}, False),
    },
    'spectral_norm': {
        'layers': (Literal['all', 'hidden'], {}, False),
        'n_power_iterations': (int, {'ge': 1}, False),
    },
    'swa': {
        'start_epoch': (int | None, {'ge': 1}, False),
        'lr': (float | None, {'gt': 0.0}, False),
        'anneal_epochs': (int, {'ge': 0}, False),
    },
    'time_mask': {
        'width': (int, {'ge': 1}, True),
        'count': (int, {'ge': 1, 'le': 16}, False),
    },
    'token_dropout': {
        'p': (float, {'gt': 0.0, 'lt': 1.0}, True),
        'replace': (Literal['mask', 'random'], {}, False),
        'mask_id': (int, {'ge': 0}, False),
    },
    'weight_decay': {
        'value': (float, {'ge': 0.0}, False),
        'mode': (Literal['decoupled', 'l2'], {}, False),
        'exclude_bias_and_norm': (bool, {}, False),
    },
    'weight_tying': {},
}

# data.kwargs of the datasets that take options (the others take none)
DATASET_OPTIONS: dict[str, dict[str, tuple[Any, dict[str, Any], bool]]] = {
    'cifar100': {
        'labels': (Literal['fine', 'coarse'], {}, False),
    },
    'image_folder': {
        'folder': (str, {}, True),
        'image_size': (int | None, {'ge': 1}, False),
        'grayscale': (bool, {}, False),
        'test_fraction': (float, {'gt': 0.0, 'lt': 1.0}, False),
    },
}
