"""AlexNet in torchvision's layout (Krizhevsky et al. 2012; the one-GPU variant).

Five convs (64 11x11/4, 192 5x5, 384, 256, 256 3x3), 3x3/2 max-pools after
the first, second and fifth, an adaptive average pool to 6x6, and the
classifier 4096-4096-classes. Dropout (torchvision's p = 0.5 before the two
hidden dense layers) is left out: it is the identity at inference, which is
what imported weights are used for, and the training steps pass no dropout
key. Named layers: conv1..conv5 (after the ReLU, before pooling), fc1, fc2,
logits. Any input of at least 63x63 pixels works; 224 is the original.

References: Krizhevsky, Sutskever, Hinton, "ImageNet Classification with Deep
Convolutional Neural Networks", NeurIPS 2012; Krizhevsky, "One weird trick
for parallelizing convolutional neural networks", arXiv 1404.5997.
"""

import flax.linen as nn
import jax.numpy as jnp

from interp_jax.models.common import adaptive_avg_pool, record

# (width, kernel, stride, padding, max-pool after)
CONVS = ((64, 11, 4, 2, True), (192, 5, 1, 2, True), (384, 3, 1, 1, False),
         (256, 3, 1, 1, False), (256, 3, 1, 1, True))


class AlexNet(nn.Module):
  num_classes: int
  hidden: int = 4096
  pool_size: int = 6

  @property
  def layer_names(self) -> tuple[str, ...]:
    return tuple(f"conv{i + 1}" for i in range(len(CONVS))) + ("fc1", "fc2", "logits")

  @nn.compact
  def __call__(self, x, train: bool = False):
    for i, (width, kernel, stride, pad, pool) in enumerate(CONVS):
      x = nn.Conv(width, (kernel, kernel), stride, padding=((pad, pad), (pad, pad)),
                  name=f"Conv_{i}")(x)  # "conv{i + 1}" names the recorded layer
      x = record(self, f"conv{i + 1}", nn.relu(x))
      if pool:
        x = nn.max_pool(x, (3, 3), strides=(2, 2))
    x = adaptive_avg_pool(x, self.pool_size).reshape(x.shape[0], -1)
    x = record(self, "fc1", nn.relu(nn.Dense(self.hidden, name="dense1")(x)))
    x = record(self, "fc2", nn.relu(nn.Dense(self.hidden, name="dense2")(x)))
    return record(self, "logits", nn.Dense(self.num_classes, name="head")(x).astype(jnp.float32))
