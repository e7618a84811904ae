DROP TABLE key_model_blocks;
