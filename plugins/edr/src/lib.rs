use soar_plugin_sdk as _;
