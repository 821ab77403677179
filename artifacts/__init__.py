"""kubeha offline artifacts: build every binary, tarball, manifest and image the deploy
installs from Go modules and Debian packages, lay them out as docs/design.md says, and push
the images to the lab registry.  `python3 -m artifacts --help`."""
