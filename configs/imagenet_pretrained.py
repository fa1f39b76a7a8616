"""torchvision's pretrained ResNet-18, analysed on ImageNet images with WordNet similarity.

The data: a folder in torchvision's ImageNet layout, one folder per class
named by its WordNet id, for example ImageNet's validation images:

    ROOT/val/n01440764/ILSVRC2012_val_00000293.JPEG
    ROOT/val/n01443537/...                          (any of the 1000 classes)

Class indices follow the standard ImageNet-1k order (the sorted wnids, which
is torchvision's: n01440764 tench = 0 ... n15075141 toilet tissue = 999)
whichever of the 1000 folders ROOT holds (dataset.classes = "imagenet1k"),
so the 1000 outputs of the imported weights mean what they meant in torchvision.
Images are prepared as torchvision evaluated them: the shorter side resized to
256, the centre 224 x 224 cut out (dataset.resize, dataset.image_size); the
mean and std become part of the imported model, which takes images in [0, 1].

    python -m interp_jax.import_weights --arch=resnet18 --checkpoint=resnet18-f37072fd.pth \\
        --workdir=runs/resnet18_imagenet --config=configs/imagenet_pretrained.py \\
        --config.dataset.data_dir=ROOT
    python -m interp_jax.analyze --workdir=runs/resnet18_imagenet --config.similarity=wordnet \\
        --config.split=validation --config.num_images=5000

(--config.split=validation because ROOT/val is that split; a ROOT/test folder
would be analysed by default.) The wordnet similarity reads WordNet 3.0 from
$INTERP_JAX_WORDNET, NLTK's data (`python -m nltk.downloader wordnet`) or
/usr/share/wordnet (`apt-get install wordnet-base`); see
interp_jax/measures/wordnet.py.

The consistent loss and the analysis' eps-curve layer are at "pool", the
penultimate features where classes live. eps is the base config's 8/255 (a
field: --config.adv.eps, or the analysis' --config.eps). The optimizer fields
are for fine-tuning from the imported weights, which this config does not do
by default.
"""

from interp_jax.default_config import base_config, select_variant


def get_config(variant: str = "standard"):
  c = base_config()
  c.dataset.name = "image_folder"
  c.dataset.data_dir = ""              # ROOT: set with --config.dataset.data_dir=ROOT
  c.dataset.image_size = 224
  c.dataset.resize = 256               # the shorter side before the centre crop
  c.dataset.classes = "imagenet1k"     # the 1000-class label space of the weights
  c.model.name = "resnet18"
  c.model.options = {"stem": "imagenet"}
  c.consistency.layers = ("pool",)
  c.eval_split = "validation"
  c.batch_size = 256
  c.eval_batch_size = 250
  c.optimizer.name = "sgd"
  c.optimizer.learning_rate = 1e-3
  c.optimizer.weight_decay = 1e-4
  return select_variant(c, variant)
