"""Reads TensorBoard event files with TensorBoard's own reader (EventAccumulator,
from the `tensorboard` package) and prints one line per value, for
tests/tensorboard_spec.lua:

  scalar <tag> <step> <value>
  histo  <tag> <step> <min> <max> <num> <sum> <sum_squares> <limits,...> <counts,...>
  text   <tag> <step> <hex of the bytes>

Usage: tb_read.py FOLDER  (every event file in it, as TensorBoard loads a run)."""
import sys

from tensorboard.backend.event_processing import event_accumulator as ea


def g(x):
    return repr(float(x))


def main(folder):
    acc = ea.EventAccumulator(folder, size_guidance={ea.SCALARS: 0, ea.HISTOGRAMS: 0, ea.TENSORS: 0})
    acc.Reload()
    tags = acc.Tags()
    for tag in tags['scalars']:
        for e in acc.Scalars(tag):
            print('scalar', tag, e.step, g(e.value), sep='\t')
    for tag in tags['histograms']:
        for e in acc.Histograms(tag):
            h = e.histogram_value
            print('histo', tag, e.step, g(h.min), g(h.max), g(h.num), g(h.sum), g(h.sum_squares),
                  ','.join(g(x) for x in h.bucket_limit), ','.join(g(x) for x in h.bucket), sep='\t')
    for tag in tags['tensors']:
        for e in acc.Tensors(tag):
            print('text', tag, e.step, b''.join(e.tensor_proto.string_val).hex(), sep='\t')


if __name__ == '__main__':
    main(sys.argv[1])
