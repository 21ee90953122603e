# The panoptic demo's Mask2Former head: mmdet's (deformable pixel decoder +
# masked-attention transformer decoder) shrunk for 2 CPU cores: 64 channels,
# 16 queries, 2 encoder and 3 decoder layers, 4 heads. A variable, not a
# `model`: mmdet keeps this model only inside its whole panoptic recipe, which
# the demo's data base already inherits (mmengine refuses two `_base_` files
# that set the same key). The demo leaf adds in_channels, strides and the
# class counts: panoptic_head=dict(_base_.mask2former_tiny_head, ...).
m2f_feat = 64
mask2former_tiny_head = dict(
    feat_channels=m2f_feat,
    out_channels=m2f_feat,
    num_queries=16,
    pixel_decoder=dict(
        encoder=dict(
            num_layers=2,
            layer_cfg=dict(
                self_attn_cfg=dict(embed_dims=m2f_feat, num_heads=4),
                ffn_cfg=dict(embed_dims=m2f_feat,
                             feedforward_channels=4 * m2f_feat))),
        positional_encoding=dict(num_feats=m2f_feat // 2)),
    positional_encoding=dict(num_feats=m2f_feat // 2),
    transformer_decoder=dict(
        num_layers=3,
        layer_cfg=dict(
            self_attn_cfg=dict(embed_dims=m2f_feat, num_heads=4),
            cross_attn_cfg=dict(embed_dims=m2f_feat, num_heads=4),
            ffn_cfg=dict(embed_dims=m2f_feat,
                         feedforward_channels=4 * m2f_feat))))
