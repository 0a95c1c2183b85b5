"""Knowledge distillation for classifiers: a small student learns the teacher's soft targets + the labels.

Loss (Hinton et al. 2015, "Distilling the Knowledge in a Neural Network"):
    alpha * CE(labels, student) + (1 - alpha) * T^2 * KL(softmax(teacher/T) || softmax(student/T))
Teacher logits are computed once (the teacher is frozen); they travel with the labels in y_true, so the
plain fit loop (progress, early stopping, tf.distribute) trains the student. A softmax output layer is
switched to logits for training and back afterwards. Embedding models: see distill_text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import BadInput
from .common import OptimizeRequest, check_labels_fit, check_output, converted_figures, write_output
from .train import fit, set_seed


@dataclass
class DistillOptions:
    teacher: str
    temperature: float = 4.0
    alpha: float = 0.1  # weight of the hard-label loss (1 - alpha on the soft targets)
    extra: dict = field(default_factory=dict)


def logits_of(model, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """The model's pre-softmax outputs: a softmax activation on the last layer is switched off meanwhile."""
    from .common import outputs_probabilities
    from .keras_bridge import tf_keras_module

    last = model.layers[-1]
    if outputs_probabilities(model) and hasattr(last, "activation"):
        softmax, last.activation = last.activation, tf_keras_module().activations.linear
        try:
            return np.asarray(model.predict(x, batch_size=batch_size, verbose=0))
        finally:
            last.activation = softmax
    outputs = np.asarray(model.predict(x, batch_size=batch_size, verbose=0))
    return np.log(np.clip(outputs, 1e-8, 1.0)) if outputs_probabilities(model) else outputs


def distillation_loss(classes: int, temperature: float, alpha: float):
    """y_true = [one-hot labels | teacher logits]; y_pred = student logits."""
    from ..tf_loader import tensorflow

    tf = tensorflow()

    def loss(y_true, student_logits):
        hard, teacher_logits = y_true[:, :classes], y_true[:, classes:]
        cross_entropy = tf.nn.softmax_cross_entropy_with_logits(hard, student_logits)
        soft_teacher = tf.nn.softmax(teacher_logits / temperature)
        kl = tf.reduce_sum(soft_teacher * (tf.math.log(soft_teacher + 1e-12)
                                           - tf.nn.log_softmax(student_logits / temperature)), axis=-1)
        return alpha * cross_entropy + (1.0 - alpha) * temperature ** 2 * kl

    def accuracy(y_true, student_logits):
        return tf.cast(tf.equal(tf.argmax(y_true[:, :classes], -1), tf.argmax(student_logits, -1)), tf.float32)

    return loss, accuracy


def pack_targets(y: np.ndarray, teacher_logits: np.ndarray, classes: int) -> np.ndarray:
    return np.concatenate([np.eye(classes, dtype=np.float32)[y], teacher_logits.astype(np.float32)], axis=1)


def distill(request: OptimizeRequest, options: DistillOptions) -> dict:
    """Train request.model (the student) from options.teacher on request.data -> result dict."""
    from .common import Technique, outputs_probabilities
    from .data import load_data
    from .keras_bridge import load_trainable, tf_keras_module
    from .measure import count_params, keras_top1
    from .strategy import get_strategy

    if options.temperature <= 0:
        raise BadInput(f"--temperature must be positive, got {options.temperature}")
    if not 0.0 <= options.alpha <= 1.0:
        raise BadInput(f"--alpha must be between 0 and 1, got {options.alpha}")
    if Path(request.data).suffix == ".txt":
        from .distill_text import distill_embeddings

        return distill_embeddings(request, options)
    technique = Technique("distill", None, None, None)
    check_output(Path(request.output), technique)
    strategy = get_strategy(request.strategy)
    set_seed(request.fit.seed)
    tf_keras = tf_keras_module()
    teacher = load_trainable(options.teacher)
    data = load_data(request.data, tuple(teacher.model.inputs[0].shape), request.preset, request.val)
    check_labels_fit(data, teacher.model)
    classes = int(teacher.model.outputs[0].shape[-1])
    targets = pack_targets(data.y, logits_of(teacher.model, data.x), classes)
    val_targets = pack_targets(data.y_val, logits_of(teacher.model, data.x_val), classes)
    with strategy.scope():
        student = load_trainable(request.model)
        model = student.model
        if tuple(model.inputs[0].shape[1:]) != tuple(teacher.model.inputs[0].shape[1:]) \
                or model.outputs[0].shape[-1] != classes:
            raise BadInput(f"student {Path(request.model).name} (input {list(model.inputs[0].shape)}, "
                           f"{model.outputs[0].shape[-1]} outputs) does not match the teacher (input "
                           f"{list(teacher.model.inputs[0].shape)}, {classes} outputs)")
        last = model.layers[-1]
        softmax = outputs_probabilities(model) and hasattr(last, "activation")
        if softmax:
            last.activation = tf_keras.activations.linear
        loss, accuracy = distillation_loss(classes, options.temperature, options.alpha)
        model.compile(optimizer=tf_keras.optimizers.Adam(request.fit.learning_rate), loss=loss,
                      metrics=[accuracy])
    training = fit(model, tf_keras, data.x, targets, (data.x_val, val_targets), request.fit, "distill")
    if softmax:
        last.activation = tf_keras.activations.softmax
    teacher_params, student_params = count_params(teacher.model), count_params(model)
    result = {
        "technique": "distill",
        "teacher": options.teacher,
        "model": request.model,
        "data": data.describe(),
        "strategy": {"name": request.strategy, "replicas": strategy.num_replicas_in_sync},
        "training": training,
        "temperature": options.temperature,
        "alpha": options.alpha,
        "params": student_params,
        "accuracy_before": keras_top1(teacher.model, data.x_val, data.y_val),  # the teacher's
        "accuracy_after": keras_top1(model, data.x_val, data.y_val),
        "distill": {"teacher_params": teacher_params, "student_params": student_params,
                    "param_ratio": student_params / teacher_params},
        "tflite": converted_figures({"teacher float32": (teacher.model, "float32"),
                                     f"teacher {request.quant}": (teacher.model, request.quant),
                                     "student float32": (model, "float32"),
                                     f"student {request.quant}": (model, request.quant)}, data),
        "notes": teacher.notes + student.notes,
    }
    result["output"] = write_output(model, request, data, result)
    return result
