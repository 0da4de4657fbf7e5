"""Development tools outside the shipped package: launchers of local servers (moto's S3,
``rclone serve s3``, NATS, the mock API, the light file manager, fake-gcs-server, Azurite) for
the tests, the demo and the benchmarks. Not in the wheel or the runtime image."""
