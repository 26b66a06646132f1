// sd-webui-reimagine: Generate with live progress in the Reimagine tab (the WebUI's own txt2img pattern).

function submit_reimagine() {
    showSubmitButtons('reimagine', false);

    var id = randomId();
    localSet("reimagine_task_id", id);

    requestProgress(id, gradioApp().getElementById('reimagine_gallery_container'), gradioApp().getElementById('reimagine_gallery'), function() {
        showSubmitButtons('reimagine', true);
        localRemove("reimagine_task_id");
        showRestoreProgressButton('reimagine', false);
    });

    var res = create_submit_args(arguments);
    res[0] = id;
    return res;
}
