"""Run a trained mmdiff model on one image and save the host's visualisation.

    python demo/image_demo.py IMG CONFIG CHECKPOINT --out-file OUT.png
        [--device cpu] [--opacity 0.5] [--score-thr 0.3]

The config's ``default_scope`` picks the host, as in mmseg's and mmdet's own
``demo/image_demo.py``:

- segmentation (mmseg): ``init_model`` + ``inference_model``, drawn by
  ``SegLocalVisualizer`` (class colours over the image, with labels);
- depth (mmseg ``DepthEstimator``): the same; the visualisation is the image
  above its colour-mapped depth. Also written: ``<OUT>_depth.png`` (16-bit,
  millimetres, as NYU's depth PNGs: metres = value / 1000) and
  ``<OUT>_depth_color.png`` (the depth alone, colour-mapped, near = dark);
- detection / instance / panoptic segmentation (mmdet): ``init_detector``
  + ``inference_detector``, drawn by ``DetLocalVisualizer`` (boxes, labels,
  scores, masks) above ``--score-thr``; a panoptic prediction without any
  segment is said so and the image drawn alone.
"""
import argparse
import os
import os.path as osp
import sys

# Run from a checkout, the checkout's mmdiff wins over an installed copy.
_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if osp.isfile(osp.join(_ROOT, 'mmdiff', '__init__.py')):
    sys.path.insert(0, _ROOT)

import cv2  # noqa: E402
import mmcv  # noqa: E402
import numpy as np  # noqa: E402
from mmengine.config import Config  # noqa: E402

import mmdiff  # noqa: E402,F401  (mmdiff:: bases, weights-only checkpoints)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Predict one image with an mmdiff config + checkpoint')
    parser.add_argument('img', help='image file')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out-file', required=True,
                        help='where to write the visualisation (.png/.jpg)')
    parser.add_argument('--device', default='cpu', help='e.g. cpu, cuda:0')
    parser.add_argument('--opacity', type=float, default=0.5,
                        help='segmentation: opacity of the class colours')
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='detection: draw boxes scoring at least this')
    return parser.parse_args()


def depth_pngs(depth_m: np.ndarray, out_file: str) -> tuple:
    """Write a depth map (metres) as a 16-bit PNG in millimetres and as a
    colour-mapped PNG next to ``out_file``; returns both paths."""
    stem = osp.splitext(out_file)[0]
    raw, color = f'{stem}_depth.png', f'{stem}_depth_color.png'
    mm = np.clip(np.round(depth_m * 1000.0), 0, 65535).astype(np.uint16)
    lo, hi = float(depth_m.min()), float(depth_m.max())
    scaled = ((depth_m - lo) / max(hi - lo, 1e-6) * 255).astype(np.uint8)
    for path, image in ((raw, mm),
                        (color, cv2.applyColorMap(scaled,
                                                  cv2.COLORMAP_INFERNO))):
        if not cv2.imwrite(path, image):
            raise OSError(f'Could not write {path!r}.')
    return raw, color


def predict_mmseg(args) -> list:
    from mmseg.apis import inference_model, init_model, show_result_pyplot
    model = init_model(args.config, args.checkpoint, device=args.device)
    result = inference_model(model, args.img)
    show_result_pyplot(model, args.img, result, opacity=args.opacity,
                       draw_gt=False, show=False, out_file=args.out_file)
    written = [args.out_file]
    if 'pred_depth_map' in result:
        depth = result.pred_depth_map.data.squeeze(0).cpu().numpy()
        written += depth_pngs(depth, args.out_file)
    return written


def has_panoptic_segment(result, num_classes: int) -> bool:
    """Whether a panoptic prediction holds a segment (a pixel not VOID,
    whose id is ``num_classes`` in mmdet); True for other predictions."""
    if 'pred_panoptic_seg' not in result:
        return True
    ids = result.pred_panoptic_seg.sem_seg.unique()
    return bool((ids != num_classes).any())


def predict_mmdet(args) -> list:
    from mmdet.apis import inference_detector, init_detector
    from mmdet.registry import VISUALIZERS
    model = init_detector(args.config, args.checkpoint, device=args.device)
    result = inference_detector(model, args.img)
    if not has_panoptic_segment(result, len(model.dataset_meta['classes'])):
        # mmdet's DetLocalVisualizer cannot draw an empty panoptic map
        # (`np.stack` of no segment): the image is drawn without one
        del result.pred_panoptic_seg
        print('no segment predicted: every pixel is VOID (no query scored '
              'above the panoptic head\'s object_mask_thr); drawing the image '
              'alone')
    visualizer = VISUALIZERS.build(model.cfg.visualizer)
    visualizer.dataset_meta = model.dataset_meta
    image = mmcv.imconvert(mmcv.imread(args.img), 'bgr', 'rgb')
    visualizer.add_datasample(
        'result', image, data_sample=result, draw_gt=False, show=False,
        pred_score_thr=args.score_thr, out_file=args.out_file)
    return [args.out_file]


def main() -> None:
    args = parse_args()
    for path, what in ((args.img, 'Image'), (args.config, 'Config'),
                       (args.checkpoint, 'Checkpoint')):
        if not osp.isfile(path):
            raise FileNotFoundError(f'{what} {path!r} does not exist.')
    if mmcv.imread(args.img) is None:
        raise ValueError(f'{args.img!r} is not an image OpenCV can read.')
    scope = Config.fromfile(args.config).get('default_scope')
    if scope not in ('mmseg', 'mmdet'):
        raise ValueError(
            f'{args.config} has default_scope={scope!r}; image_demo.py runs '
            "mmseg and mmdet configs ('mmseg' or 'mmdet').")
    os.makedirs(osp.dirname(osp.abspath(args.out_file)), exist_ok=True)
    written = (predict_mmseg if scope == 'mmseg' else predict_mmdet)(args)
    print('wrote ' + ', '.join(written))


if __name__ == '__main__':
    main()
