# Bakes one AMI for one app at one commit. Two files, so that both Packer generations work:
#
#   app.pkr.hcl  (this file) variables, locals and the emulator source: read by every Packer,
#                Debian's 1.6.6 included (`release` hands 1.6 this file alone).
#   aws.pkr.hcl  the real-AWS source: `required_plugins`, IMDSv2, encryption, a restricted SSH rule,
#                copies and shares. Packer 1.6 rejects all of that, so only Packer >= 1.7 reads it:
#                `release` runs `packer init <dir>` then `packer build <dir>` (the whole folder).
#
# Real AWS:  packer init . && packer build -only=amazon-ebs.aws -var app=... .
# Emulator:  packer build -only=amazon-ebs.emulator -var ec2_endpoint=http://127.0.0.1:4566 ... app.pkr.hcl
#
# Always pass -only: in a folder build without it both sources run, and amazon-ebs.aws goes to real AWS.
# An -only that matches no source (e.g. -only=emulator) builds nothing and exits 0.
# The emulator source has no communicator, so no provisioner runs there: it only
# exercises RunInstances -> StopInstances -> CreateImage -> TerminateInstances.
# Packer rejects a -var whose variable is not declared ("Undefined -var variable"),
# so the caller passes only the variables below; every variable lives in this file.
# Credentials come from the environment (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY).

variable "app" {
  type        = string
  description = "App name; the app is installed under /opt/<app> and runs as systemd unit <app>.service."
}

variable "commit" {
  type        = string
  description = "Commit the artifact was built from; recorded as a tag on the AMI."
}

variable "artifact" {
  type        = string
  description = "Path on the local machine of the app's tarball (.tar.gz), unpacked into /opt/<app>."
}

variable "base_ami" {
  type        = string
  description = "Resolved id (ami-...) of the image to build on."
}

variable "instance_type" {
  type    = string
  default = "t3.micro"
}

variable "region" {
  type    = string
  default = "us-east-1"
}

variable "ec2_endpoint" {
  type        = string
  default     = ""
  description = "EC2 endpoint of the emulator, used only by the emulator source; empty there means http://127.0.0.1:4566."

  # The emulator source must never reach a real endpoint: only loopback URLs pass.
  # (Packer 1.6.6 offers no regex function in validation conditions, hence substr/split.)
  validation {
    condition     = var.ec2_endpoint == "" || ((substr(var.ec2_endpoint, 0, 17) == "http://127.0.0.1:" || substr(var.ec2_endpoint, 0, 17) == "http://localhost:") && length(split("@", var.ec2_endpoint)) == 1 && length(split("/", var.ec2_endpoint)) <= 4)
    error_message = "The ec2_endpoint value must be empty or a loopback URL with a port, such as http://127.0.0.1:4566."
  }
}

variable "ami_name" {
  type        = string
  description = "Full name of the AMI to create (computed by the caller; must be unique in the account and region)."
}

variable "ssh_username" {
  type    = string
  default = "ec2-user"
}

variable "subnet_id" {
  type        = string
  default     = ""
  description = "Subnet of the builder instance on AWS; empty means the default VPC's."
}

variable "exec_start" {
  type        = string
  default     = ""
  description = "Command line of the service; empty means /opt/<app>/bin/<app>."
}

variable "ami_regions" {
  type        = list(string)
  default     = []
  description = "Other regions to copy the AMI to ([bake] regions); the copies carry the same tags."
}

variable "ami_users" {
  type        = list(string)
  default     = []
  description = "Accounts the AMI and its snapshots are shared with ([bake] accounts)."
}

variable "ssh_cidrs" {
  type        = list(string)
  default     = []
  description = "Who may reach the builder's temporary SSH port; empty means only the public IP of the machine running Packer."
}

variable "kms_key_id" {
  type        = string
  default     = ""
  description = "KMS key for the encrypted AMI in the bake's region ([bake] kms_keys); empty means the account's default EBS key."
}

variable "region_kms_key_ids" {
  type        = map(string)
  default     = {}
  description = "KMS key of each copy's region ([bake] kms_keys); a copy without one gets its region's default EBS key."
}

variable "encrypt_boot" {
  type        = bool
  default     = true
  description = "Encrypt the AMI's snapshots ([bake] encrypted)."
}

variable "release_tags" {
  type        = map(string)
  default     = {}
  description = "release:* tags for the AMI copies in other regions (release tags the AMI of this region itself, bake key last)."
}

locals {
  app_dir    = "/opt/${var.app}"
  env_file   = "/etc/${var.app}/env"
  exec_start = var.exec_start != "" ? var.exec_start : "/opt/${var.app}/bin/${var.app}"
  tags = {
    Name   = var.ami_name
    app    = var.app
    commit = var.commit
  }
  run_tags = {
    Name   = "packer-builder ${var.ami_name}"
    app    = var.app
    commit = var.commit
  }
}

source "amazon-ebs" "emulator" {
  region              = var.region
  source_ami          = var.base_ami
  instance_type       = var.instance_type
  ami_name            = var.ami_name
  communicator        = "none"
  custom_endpoint_ec2 = var.ec2_endpoint != "" ? var.ec2_endpoint : "http://127.0.0.1:4566"
  # Belt and braces: with credentials in the environment Packer 1.6.6 sends every
  # call (DescribeRegions too) to custom_endpoint_ec2 even without these three.
  # Without credentials it asks 169.254.169.254 whatever skip_metadata_api_check says.
  skip_credential_validation = true
  skip_metadata_api_check    = true
  skip_region_validation     = true
  tags                       = local.tags
  snapshot_tags              = local.tags
  run_tags                   = local.run_tags
}

build {
  sources = ["source.amazon-ebs.emulator"]
}
