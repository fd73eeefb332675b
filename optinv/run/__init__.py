"""Jobs over files: the one runner every front end uses, ``batch`` (many images, ranks, resume),
scoring folders (``evaluate``) and training an encoder for a generator (``encoder_training``)."""
