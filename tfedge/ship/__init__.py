"""Shipping to the device: bundle (one checksummed artifact), deploy (over SSH) and deploy_remote (its half
that runs on the device), device_wheel (the device package built for an offline install)."""
