"""Keras callbacks for GAN training."""
import os
import tempfile

import keras
import tensorflow as tf


class SamplePictures(keras.callbacks.Callback):
    """At the end of each epoch, draw samples and write a picture of them to TensorBoard.

    Points are drawn coloured by generator over the real data; images as one row per generator.
    The same fixed noise seed is used every epoch, so the pictures show one noise set evolving.
    """

    def __init__(self, log_dir, real, num_samples=1000, seed=0):
        super().__init__()
        self.log_dir = log_dir
        self.real = real[:num_samples]
        self.num_samples = num_samples
        self.seed = seed
        self._writer = None

    def on_epoch_end(self, epoch, logs=None):
        from tfgan_mix import vis

        samples, generator = self.model.sample(self.num_samples, seed=self.seed)
        k = self.model.config.num_generators
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "samples.png")
            if samples.ndim == 4:
                vis.image_grid_per_generator(samples, generator, path, num_generators=k)
            else:
                vis.scatter_by_generator(samples, generator, path, real=self.real, num_generators=k)
            with open(path, "rb") as f:
                picture = tf.io.decode_png(f.read(), channels=4)
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)
        with self._writer.as_default():
            tf.summary.image("samples", picture[None], step=int(self.model.g_optimizer.iterations.numpy()))
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
