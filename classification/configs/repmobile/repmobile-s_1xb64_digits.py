# RepMobile-S on scikit-learn's handwritten digits (tools/dataset_converters/export_digits.py):
# a real-data run that trains on 2 CPU cores in a few minutes.
_base_ = [
    '../../../configs/_base_/models/repmobile-s_in1k.py',
    '../_base_/digits_1xb64.py',
]
model = dict(head=dict(num_classes=10, topk=(1, ), dropout=0.1))
