# RepViT-M0.9 on scikit-learn's handwritten digits (tools/dataset_converters/export_digits.py):
# the digits run of ../_base_/digits_1xb64.py (8 epochs; RepMobile-S takes 12) with the
# RepViT model.
_base_ = [
    '../../../configs/_base_/models/repvit-m0.9_in1k.py',
    '../_base_/digits_1xb64.py',
]
model = dict(head=dict(num_classes=10, topk=(1, )))
