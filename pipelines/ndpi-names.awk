# ndpi-names.awk: one spelling of nDPI's protocol names across its versions,
# for the scripts that compare or join names from two releases
# (ndpi-agreement, label-ndpi --spell-as). canon(NAME) is NAME in lower case,
# with the spellings newer releases changed mapped to nDPI 4.2's (Debian 12's).
function canon(name,   l) {
	if (!ndpi_names_ready) {
		ndpi_respell["dcerpc"] = "dce_rpc"
		ndpi_respell["z3950"] = "z39.50"
		ndpi_names_ready = 1
	}
	l = tolower(name)
	return (l in ndpi_respell) ? ndpi_respell[l] : l
}
