"""Parts of the hostile-input scenario (hostile_input.py): file writers and the cases of each reader."""
