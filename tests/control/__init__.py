"""End-to-end tests of the control plane and the ``dmap`` CLI against real ``dmap worker`` processes."""
