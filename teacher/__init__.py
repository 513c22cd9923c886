"""Teacher side: loading sequence classifiers safely, Beam inference, soft labels, fine-tuning."""
