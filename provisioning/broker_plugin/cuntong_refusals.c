/*
 * cuntong_refusals: a Mosquitto 2.0 plugin (plugin API version 5) that refuses a
 * terminal's SUBSCRIBE outside its own subtree and reports each refusal to the cloud.
 *
 * Loaded *before* the dynamic-security plugin: Mosquitto asks the ACL callbacks in the
 * order the plugins were loaded, and the first answer other than MOSQ_ERR_PLUGIN_DEFER
 * decides. So this callback:
 *   - defers everything that is not a SUBSCRIBE, or not by a terminal (a client whose
 *     user name, the certificate CN, is a terminal id: letters, digits, '-', '_'; cloud
 *     services are "svc.<instance>"), or inside "<terminal_root>/<own id>/": the
 *     dynamic-security plugin decides those, as before;
 *   - refuses (MOSQ_ERR_ACL_DENIED, SUBACK 0x87) a terminal's filter outside its own
 *     subtree ("$share/...", "#", another terminal's topics), and publishes one small
 *     report on the cloud-only report topic:
 *         {"client_id": "...", "username": "...", "filter": "...", "access": "subscribe"}
 *     which the cloud's ingest counts per terminal (fleet misbehaviour watch).
 *
 * Options (plugin_opt_*): report_topic (default cuntong/v1/broker/refused) and
 * terminal_root (default cuntong/v1/t). Built by provisioning.brokerplugin.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

#define REPORT_MAX 4096

static mosquitto_plugin_id_t *plugin_id = NULL;
static char report_topic[256] = "cuntong/v1/broker/refused";
static char terminal_root[128] = "cuntong/v1/t";

static bool is_terminal_id(const char *id)
{
	size_t n = 0;
	if(id == NULL || id[0] == '\0' || id[0] == '-' || id[0] == '_') return false;
	for(; id[n]; n++){
		char c = id[n];
		bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
			|| c == '-' || c == '_';
		if(!ok || n >= 64) return false;
	}
	return true;
}

/* True if filter starts with "<terminal_root>/<id>/". */
static bool in_own_subtree(const char *filter, const char *id)
{
	size_t root = strlen(terminal_root), idlen = strlen(id);
	return strncmp(filter, terminal_root, root) == 0 && filter[root] == '/'
		&& strncmp(filter + root + 1, id, idlen) == 0 && filter[root + 1 + idlen] == '/';
}

/* Appends s to out as a JSON string body; false if it does not fit. */
static bool json_append(char *out, size_t *len, size_t cap, const char *s)
{
	for(const unsigned char *p = (const unsigned char *)s; *p; p++){
		char esc[8];
		const char *piece = esc;
		size_t n;
		if(*p == '"' || *p == '\\'){
			esc[0] = '\\'; esc[1] = (char)*p; esc[2] = '\0';
		}else if(*p < 0x20){
			snprintf(esc, sizeof(esc), "\\u%04x", *p);
		}else{
			esc[0] = (char)*p; esc[1] = '\0';
		}
		n = strlen(piece);
		if(*len + n >= cap) return false;
		memcpy(out + *len, piece, n);
		*len += n;
	}
	return true;
}

static void report(const char *client_id, const char *username, const char *filter)
{
	char out[REPORT_MAX];
	size_t len = 0;
	const char *parts[] = {
		"{\"client_id\": \"", client_id, "\", \"username\": \"", username,
		"\", \"filter\": \"", filter, "\", \"access\": \"subscribe\"}",
	};
	for(size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++){
		bool ok;
		if(i % 2 == 0){
			size_t n = strlen(parts[i]);
			ok = len + n < sizeof(out);
			if(ok){ memcpy(out + len, parts[i], n); len += n; }
		}else{
			ok = json_append(out, &len, sizeof(out), parts[i] ? parts[i] : "");
		}
		if(!ok){
			mosquitto_log_printf(MOSQ_LOG_WARNING,
				"cuntong_refusals: report for %s too long, not sent", client_id);
			return;
		}
	}
	/* Queued by the broker and delivered after this callback returns. */
	if(mosquitto_broker_publish_copy(NULL, report_topic, (int)len, out, 1, false, NULL)
			!= MOSQ_ERR_SUCCESS){
		mosquitto_log_printf(MOSQ_LOG_WARNING, "cuntong_refusals: report not queued");
	}
}

static int on_acl_check(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_acl_check *ed = event_data;
	const char *username, *client_id;
	(void)event;
	(void)userdata;

	if(ed->access != MOSQ_ACL_SUBSCRIBE || ed->topic == NULL) return MOSQ_ERR_PLUGIN_DEFER;
	username = mosquitto_client_username(ed->client);
	if(!is_terminal_id(username)) return MOSQ_ERR_PLUGIN_DEFER;
	if(in_own_subtree(ed->topic, username)) return MOSQ_ERR_PLUGIN_DEFER;

	client_id = mosquitto_client_id(ed->client);
	report(client_id ? client_id : "", username, ed->topic);
	return MOSQ_ERR_ACL_DENIED;
}

int mosquitto_plugin_version(int supported_version_count, const int *supported_versions)
{
	for(int i = 0; i < supported_version_count; i++){
		if(supported_versions[i] == 5) return 5;
	}
	return -1;
}

int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **userdata,
		struct mosquitto_opt *options, int option_count)
{
	(void)userdata;
	for(int i = 0; i < option_count; i++){
		char *dest = NULL;
		size_t cap = 0;
		if(strcmp(options[i].key, "report_topic") == 0){
			dest = report_topic; cap = sizeof(report_topic);
		}else if(strcmp(options[i].key, "terminal_root") == 0){
			dest = terminal_root; cap = sizeof(terminal_root);
		}else{
			continue;  /* options of other plugins share the namespace */
		}
		if(strlen(options[i].value) == 0 || strlen(options[i].value) >= cap){
			mosquitto_log_printf(MOSQ_LOG_ERR, "cuntong_refusals: bad %s", options[i].key);
			return MOSQ_ERR_INVAL;
		}
		strcpy(dest, options[i].value);
	}
	plugin_id = identifier;
	mosquitto_log_printf(MOSQ_LOG_INFO, "cuntong_refusals: reporting refused subscriptions on %s",
		report_topic);
	return mosquitto_callback_register(plugin_id, MOSQ_EVT_ACL_CHECK, on_acl_check, NULL, NULL);
}

int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *options, int option_count)
{
	(void)userdata;
	(void)options;
	(void)option_count;
	return mosquitto_callback_unregister(plugin_id, MOSQ_EVT_ACL_CHECK, on_acl_check, NULL);
}
