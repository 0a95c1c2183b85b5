"""Model optimization before conversion: prune, qat, cluster (tfmot, on tf_keras) and distill.

Keras 3 models are bridged to tf_keras first (keras_bridge); training runs under a tf.distribute strategy
(strategy) in one shared fit loop (train); every result is measured after conversion (measure).
tensorflow_model_optimization is imported lazily inside the functions that use it: importing it sets
TF_USE_LEGACY_KERAS=1 for the whole process.
"""
